//! `fleetmesh request`, `fleetmesh run` and `fleetmesh result`: requests to nodes through the
//! admin API (`POST /api/nodes/{id}/requests`, `GET /api/requests/{id}`).

use serde_json::{json, Value};

use super::{commands::print, Api, ApiArgs, ClientError};
use crate::duration::HumanDuration;

/// How long a request waits for an absent node unless told.
const DEFAULT_TTL: &str = "1h";
/// How long the command waits for the answer unless told.
const DEFAULT_WAIT: &str = "30s";

/// `fleetmesh request`.
#[derive(clap::Args, Debug)]
pub(crate) struct RequestArgs {
    /// The node's id (or a unique prefix).
    id: String,
    /// Which handler answers it (`ping`, `inventory`, `exec`, or an application's own).
    kind: String,
    /// The handler's input (text).
    #[arg(default_value = "")]
    body: String,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    api: ApiArgs,
}

/// `fleetmesh run`.
#[derive(clap::Args, Debug)]
pub(crate) struct RunArgs {
    /// The node's id (or a unique prefix).
    id: String,
    /// The name of a command in the node's `[commands]` config.
    command: String,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    api: ApiArgs,
}

/// `fleetmesh history`.
#[derive(clap::Args, Debug)]
pub(crate) struct HistoryArgs {
    /// The node's id (or a unique prefix); or `all`, `subnet:KEY` or `tag:TAG` for the
    /// nodes' combined history (each LSN combines its nodes', the master the LSNs').
    id: String,
    /// The series: cpu (percent), mem, disk (bytes used), net_rx, net_tx (bytes per 10 s),
    /// or an application's own.
    series: String,
    /// How far back from now.
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    last: HumanDuration,
    /// The width of one line (a bucket): its samples' count, min, mean and max.
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    bucket: HumanDuration,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    api: ApiArgs,
}

/// `fleetmesh result`.
#[derive(clap::Args, Debug)]
pub(crate) struct ResultArgs {
    /// The request's id, as `request` or `run` printed it.
    request: u64,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(clap::Args, Debug)]
struct WaitArgs {
    /// How long the request may wait for the node (5m, 1h, 7d; at most 30d).
    #[arg(long, default_value = DEFAULT_TTL, value_name = "DURATION")]
    ttl: HumanDuration,
    /// How long to wait for the answer here (at most 60s); the request goes on after it.
    #[arg(long, default_value = DEFAULT_WAIT, value_name = "DURATION")]
    wait: HumanDuration,
}

fn send(
    api: &Api,
    id: &str,
    kind: &str,
    body: &str,
    wait: &WaitArgs,
) -> Result<Value, ClientError> {
    let node = api.resolve(id)?;
    let request = json!({
        "kind": kind,
        "body": body,
        "ttl_secs": wait.ttl.0.as_secs(),
        "wait_secs": wait.wait.0.as_secs(),
    });
    api.post(&format!("/api/nodes/{node}/requests"), &request).map(|(_, reply)| reply)
}

pub(super) fn request(args: RequestArgs) -> Result<(), ClientError> {
    let api = Api::connect(&args.api)?;
    let reply = send(&api, &args.id, &args.kind, &args.body, &args.wait)?;
    print(&api, &reply, text);
    ended_ok(&reply)
}

pub(super) fn result(args: ResultArgs) -> Result<(), ClientError> {
    let api = Api::connect(&args.api)?;
    let reply = api.get(&format!("/api/requests/{}", args.request))?;
    if reply["query"] == true {
        // A fleet-wide aggregate: its combined answer and whom it covers.
        print(&api, &reply, |r| {
            format!(
                "over {} node(s); {} failed, {} did not answer\n{}\n",
                r["hosts"],
                r["failed"],
                r["missing"],
                r["body"].as_str().unwrap_or_default()
            )
        });
        return if reply["status"] == "ok" {
            Ok(())
        } else {
            Err(ClientError::Failed("no node's answer could be combined".into()))
        };
    }
    if reply.get("audience").is_some() {
        print(&api, &reply, super::broadcast::text);
        return super::broadcast::all_ok(&reply);
    }
    print(&api, &reply, text);
    ended_ok(&reply)
}

/// Prints the command's output as it was (stdout to stdout, stderr to stderr) and passes its
/// exit status on.
pub(super) fn run(args: RunArgs) -> Result<(), ClientError> {
    let api = Api::connect(&args.api)?;
    let reply = send(&api, &args.id, "exec", &args.command, &args.wait)?;
    if api.json {
        println!("{reply}");
    }
    ended_ok(&reply)?;
    let output: Value = serde_json::from_str(reply["body"].as_str().unwrap_or_default())
        .map_err(|_| ClientError::Failed("the node's answer is not a command's output".into()))?;
    if !api.json {
        print!("{}", output["stdout"].as_str().unwrap_or_default());
        eprint!("{}", output["stderr"].as_str().unwrap_or_default());
        if output["truncated"] == true {
            eprintln!("fleetmesh: output truncated to fit one message");
        }
    }
    match (output["exit"].as_i64(), output["signal"].as_i64()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(ClientError::Exit(u8::try_from(code).unwrap_or(1).max(1))),
        (None, Some(signal)) => {
            Err(ClientError::Failed(format!("the command was killed by signal {signal}")))
        }
        (None, None) => Err(ClientError::Failed("the command's exit status is unknown".into())),
    }
}

/// Asks the node for a downsampled range of one series and prints it, a bucket a line.
/// `all`, `subnet:KEY` or `tag:TAG`: the fleet's history, with the audience's key and value
/// for `POST /api/queries` (none for all nodes); anything else names one node.
fn fleet_target(id: &str) -> Option<Option<(&'static str, &str)>> {
    match id {
        "all" => Some(None),
        _ => id
            .strip_prefix("subnet:")
            .map(|k| ("subnet", k))
            .or_else(|| id.strip_prefix("tag:").map(|t| ("tag", t)))
            .map(Some),
    }
}

pub(super) fn history(args: HistoryArgs) -> Result<(), ClientError> {
    let api = Api::connect(&args.api)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let bucket = args.bucket.0.as_secs().max(1);
    let query = json!({
        "series": args.series,
        "from": now - args.last.0.as_secs() as i64,
        "to": now,
        "bucket_secs": bucket,
    });
    let fleet = fleet_target(&args.id);
    let reply = match &fleet {
        Some(target) => {
            let mut ask = json!({ "kind": "history", "body": query.to_string() });
            if let Some((key, value)) = target {
                ask[*key] = json!(value);
            }
            let (_, reply) = api.post("/api/queries", &ask)?;
            if reply["state"] != "ended" {
                let id = &reply["id"];
                return Err(ClientError::Failed(format!(
                    "no answer yet (fleetmesh result {id} later)"
                )));
            }
            reply
        }
        None => {
            let reply = send(&api, &args.id, "history", &query.to_string(), &args.wait)?;
            ended_ok(&reply)?;
            reply
        }
    };
    if reply["status"] != "ok" {
        let why = reply["body"].as_str().or(reply["error"].as_str()).unwrap_or("no answer");
        return Err(ClientError::Failed(format!("no history: {why}")));
    }
    let answer: Value = serde_json::from_str(reply["body"].as_str().unwrap_or_default())
        .map_err(|_| ClientError::Failed("the answer is not a history".into()))?;
    if api.json {
        println!("{answer}");
        return Ok(());
    }
    if fleet.is_some() {
        println!(
            "{} over {} node(s); {} failed, {} did not answer; {} LSN(s), {} silent",
            args.series,
            reply["hosts"],
            reply["failed"],
            reply["missing"],
            reply["lsns"],
            reply["lsns_silent"]
        );
    }
    let from = answer["query"]["from"].as_i64().unwrap_or_default();
    println!("{:<20} {:>6} {:>14} {:>14} {:>14}", "from (UTC)", "count", "min", "mean", "max");
    for (i, b) in answer["buckets"].as_array().into_iter().flatten().enumerate() {
        let start = from + i as i64 * bucket as i64;
        let count = b["count"].as_u64().unwrap_or_default();
        let num = |key: &str| b[key].as_f64().map_or("-".to_owned(), |v| format!("{v:.2}"));
        if count == 0 {
            println!("{:<20} {:>6}", utc(start), 0);
        } else {
            println!(
                "{:<20} {count:>6} {:>14} {:>14} {:>14}",
                utc(start),
                num("min"),
                num("mean"),
                num("max")
            );
        }
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` for Unix seconds `t` (UTC; the proleptic Gregorian calendar).
fn utc(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Hinnant's algorithm, shifted to start in March).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Exit status 0 only for an answer with status `ok`.
fn ended_ok(reply: &Value) -> Result<(), ClientError> {
    let id = &reply["id"];
    match (reply["state"].as_str(), reply["status"].as_str()) {
        (Some("answered"), Some("ok")) => Ok(()),
        (Some("answered"), Some(status)) => Err(ClientError::Failed(format!(
            "the node answered {status}: {}",
            reply["body"].as_str().unwrap_or_default()
        ))),
        (Some("failed"), _) => Err(ClientError::Failed(format!(
            "request {id} failed: {}",
            reply["error"].as_str().unwrap_or("unknown reason")
        ))),
        _ => Err(ClientError::Failed(format!(
            "no answer yet; request {id} goes on (fleetmesh result {id})"
        ))),
    }
}

fn text(reply: &Value) -> String {
    let id = &reply["id"];
    match reply["state"].as_str() {
        Some("answered") => {
            let body = match (reply["body"].as_str(), reply["body_hex"].as_str()) {
                (Some(text), _) => text.to_owned(),
                (None, Some(hex)) => format!("(binary, hex) {hex}"),
                _ => String::new(),
            };
            if reply["status"] == "ok" {
                format!("{body}\n")
            } else {
                format!("request {id}: {}: {body}\n", reply["status"].as_str().unwrap_or("?"))
            }
        }
        Some("failed") => {
            format!("request {id} failed: {}\n", reply["error"].as_str().unwrap_or("?"))
        }
        _ => format!(
            "request {id} pending ({}); see `fleetmesh result {id}`\n",
            if reply["delivered"] == true { "the node has it" } else { "waiting for the node" }
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(super::utc(1_796_350_000), "2026-12-04 02:06:40");
    }
}
