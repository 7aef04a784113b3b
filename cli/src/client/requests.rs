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
