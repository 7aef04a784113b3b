//! `fleetmesh broadcast`: one request for every node, a subnet's or a tag's, through the admin
//! API (`POST /api/requests`); prints each node's answer as it came.

use serde_json::{json, Value};

use super::{commands::print, Api, ApiArgs, ClientError};
use crate::duration::HumanDuration;

/// `fleetmesh broadcast`.
#[derive(clap::Args, Debug)]
pub(crate) struct BroadcastArgs {
    /// Which handler answers it (`ping`, `inventory`, `exec`, or an application's own).
    kind: String,
    /// The handler's input (text). Every LSN on the way can read it: keep secrets for
    /// `fleetmesh request`, which seals each request to its node.
    #[arg(default_value = "")]
    body: String,
    /// Only the nodes of this subnet (its key, as `fleetmesh nodes` shows it).
    #[arg(long, conflicts_with = "tag")]
    subnet: Option<String>,
    /// Only the nodes admitted with a token carrying this tag.
    #[arg(long)]
    tag: Option<String>,
    /// How long the request stays open for nodes that are absent now (5m, 1h, 7d; at most
    /// 30d).
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    ttl: HumanDuration,
    /// How long to collect answers here (at most 60s); the request goes on after it.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    wait: HumanDuration,
    #[command(flatten)]
    api: ApiArgs,
}

pub(super) fn broadcast(args: BroadcastArgs) -> Result<(), ClientError> {
    let api = Api::connect(&args.api)?;
    let mut request = json!({
        "kind": args.kind,
        "body": args.body,
        "ttl_secs": args.ttl.0.as_secs(),
        "wait_secs": args.wait.0.as_secs(),
    });
    if let Some(subnet) = &args.subnet {
        request["subnet"] = json!(subnet);
    }
    if let Some(tag) = &args.tag {
        request["tag"] = json!(tag);
    }
    let (_, reply) = api.post("/api/requests", &request)?;
    print(&api, &reply, text);
    all_ok(&reply)
}

/// Exit status 0 only if every node that answered or failed so far answered `ok`.
pub(super) fn all_ok(reply: &Value) -> Result<(), ClientError> {
    let bad = reply["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["state"] != "answered" || n["status"] != "ok")
        .count();
    match bad {
        0 => Ok(()),
        n => Err(ClientError::Failed(format!("{n} node(s) did not answer ok"))),
    }
}

/// One line per node (its id, how it went, the first line of its answer), then a summary.
pub(super) fn text(reply: &Value) -> String {
    let mut out = String::new();
    for n in reply["nodes"].as_array().into_iter().flatten() {
        let node = n["node"].as_str().unwrap_or("?");
        let short = &node[..node.len().min(12)];
        let (how, what) = match n["state"].as_str() {
            Some("answered") => (
                n["status"].as_str().unwrap_or("?").to_owned(),
                n["body"].as_str().map_or_else(
                    || {
                        format!(
                            "(binary, {} hex digits)",
                            n["body_hex"].as_str().map_or(0, str::len)
                        )
                    },
                    |b| b.lines().next().unwrap_or_default().to_owned(),
                ),
            ),
            _ => ("failed".to_owned(), n["error"].as_str().unwrap_or("?").to_owned()),
        };
        out.push_str(&format!("{short}  {how:<12} {what}\n"));
    }
    let id = &reply["id"];
    let answered = reply["answered"].as_u64().unwrap_or_default();
    match reply["state"].as_str() {
        Some("ended") => {
            let end = &reply["end"];
            out.push_str(&format!(
                "request {id} ({}) ended: {} answered, {} took it without answering, {} never reached\n",
                reply["audience"].as_str().unwrap_or("?"),
                end["answered"],
                end["unanswered"],
                end["unreached"]
            ));
        }
        _ => out.push_str(&format!(
            "request {id} ({}): {answered} answered so far; it stays open for late nodes (fleetmesh result {id})\n",
            reply["audience"].as_str().unwrap_or("?"),
        )),
    }
    out
}
