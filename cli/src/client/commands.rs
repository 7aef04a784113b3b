//! The admin commands and what each asks the API.

use serde_json::{json, Value};

use super::{render, Api, ApiArgs, ClientError};

/// The operator's commands, clients of the master's admin API.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum AdminCommand {
    /// The fleet at a glance: the master, presence counts, and every subnet with its LSNs and
    /// how many children each has.
    Status {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The nodes the master knows, present or not, filtered; with an ID (or a unique prefix of
    /// one), that node in detail: presence, LSN, address, route, round-trip time, tags.
    Nodes(NodesArgs),
    /// Polls a node through its LSN and prints the round-trip time of each poll; exits 1 if
    /// any went unanswered.
    Ping(PingArgs),
    /// Sends a text message to a node, sealed end to end, and waits for its delivery report;
    /// exits 1 if it was not delivered.
    Send(SendArgs),
    /// Sends a request of KIND to a node's handlers (the node daemon has `ping`, `inventory`
    /// and `exec`) and prints its answer; a request to an absent node waits for it (--ttl).
    /// Exits 1 unless the node answered ok.
    Request(super::requests::RequestArgs),
    /// Sends a request of KIND to every node (or a subnet's, or a tag's) at once: one copy
    /// per LSN, which hands it to its nodes. Prints each node's answer; the request stays open
    /// for absent nodes (--ttl). Exits 1 unless every answer so far is ok.
    Broadcast(super::broadcast::BroadcastArgs),
    /// Runs a command named in the node's `[commands]` config and prints its output; exits
    /// with the command's exit status.
    Run(super::requests::RunArgs),
    /// A node's metric history, downsampled on the node: one line per bucket with its
    /// samples' count, min, mean and max.
    History(super::requests::HistoryArgs),
    /// A node's inventory as the master holds it (OS, kernel, host, CPU, memory, disks,
    /// network interfaces, installed packages): one `PATH  VALUE` line per entry, optionally
    /// only those under a PREFIX.
    Inventory(super::inventory::InventoryArgs),
    /// Where a request stands: its answer, its failure, or still pending.
    Result(super::requests::ResultArgs),
    /// Revokes a node's certificate: the master drops it and tells every LSN; it cannot join
    /// again with its key.
    Revoke(RevokeArgs),
    /// Prints the link of the master's live web view (the token is in the link's fragment,
    /// which the browser never sends to a server).
    Web {
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `fleetmesh nodes`.
#[derive(clap::Args, Debug)]
pub(crate) struct NodesArgs {
    /// One node's id (or a unique prefix of it): show it in detail.
    id: Option<String>,
    /// Only nodes of this subnet (its key, as `status` shows it).
    #[arg(long)]
    subnet: Option<String>,
    /// Only the children of this LSN (and the LSN itself).
    #[arg(long)]
    lsn: Option<String>,
    /// Only nodes carrying this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Only present nodes.
    #[arg(long, conflicts_with = "absent")]
    present: bool,
    /// Only absent nodes.
    #[arg(long)]
    absent: bool,
    /// At most this many.
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    api: ApiArgs,
}

/// `fleetmesh ping`.
#[derive(clap::Args, Debug)]
pub(crate) struct PingArgs {
    /// The node's id (or a unique prefix).
    id: String,
    /// How many polls, one after the other.
    #[arg(short = 'n', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    count: u32,
    /// Ping from this node (id or prefix) over its own session with the node, rather than
    /// from the master: shows the peer-to-peer path (direct, or relayed via which GSN). The
    /// first ping includes opening the session.
    #[arg(long, value_name = "ID")]
    from: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

/// `fleetmesh send`.
#[derive(clap::Args, Debug)]
pub(crate) struct SendArgs {
    /// The node's id (or a unique prefix).
    id: String,
    /// The message.
    text: String,
    #[command(flatten)]
    api: ApiArgs,
}

/// `fleetmesh revoke`.
#[derive(clap::Args, Debug)]
pub(crate) struct RevokeArgs {
    /// The node's id (or a unique prefix).
    id: String,
    #[command(flatten)]
    api: ApiArgs,
}

/// Runs one admin command, printing its result on stdout.
pub(crate) fn run(command: AdminCommand) -> Result<(), ClientError> {
    match command {
        AdminCommand::Status { api } => {
            let api = Api::connect(&api)?;
            let status = api.get("/api/status")?;
            print(&api, &status, render::status);
            Ok(())
        }
        AdminCommand::Nodes(args) => nodes(args),
        AdminCommand::Ping(args) => ping(args),
        AdminCommand::Send(args) => {
            let api = Api::connect(&args.api)?;
            let id = api.resolve(&args.id)?;
            let (_, reply) =
                api.post(&format!("/api/nodes/{id}/send"), &json!({ "text": args.text }))?;
            print(&api, &reply, render::outcome);
            succeeded(&reply)
        }
        AdminCommand::Request(args) => super::requests::request(args),
        AdminCommand::Run(args) => super::requests::run(args),
        AdminCommand::Broadcast(args) => super::broadcast::broadcast(args),
        AdminCommand::Result(args) => super::requests::result(args),
        AdminCommand::History(args) => super::requests::history(args),
        AdminCommand::Inventory(args) => super::inventory::inventory(args),
        AdminCommand::Revoke(args) => {
            let api = Api::connect(&args.api)?;
            let id = api.resolve(&args.id)?;
            let (_, reply) = api.post(&format!("/api/nodes/{id}/revoke"), &json!({}))?;
            print(&api, &reply, |r| format!("revoked {}\n", r["revoked"].as_str().unwrap_or("?")));
            Ok(())
        }
        AdminCommand::Web { api } => {
            let api = Api::connect(&api)?;
            // Check the link works before handing it out.
            api.get("/api/status")?;
            let link = api.page_link();
            if api.json {
                println!("{}", json!({ "url": link }));
            } else {
                println!("{link}");
            }
            Ok(())
        }
    }
}

fn nodes(args: NodesArgs) -> Result<(), ClientError> {
    let api = Api::connect(&args.api)?;
    if let Some(id) = &args.id {
        let id = api.resolve(id)?;
        let node = api.get(&format!("/api/nodes/{id}"))?;
        print(&api, &node, render::node);
        return Ok(());
    }
    let mut query = Vec::new();
    let lsn = args.lsn.as_deref().map(|l| api.resolve(l)).transpose()?;
    for (key, value) in [("subnet", args.subnet.clone()), ("lsn", lsn), ("tag", args.tag.clone())] {
        if let Some(value) = value {
            query.push(format!("{key}={}", encode(&value)));
        }
    }
    if args.present || args.absent {
        query.push(format!("present={}", args.present));
    }
    if let Some(limit) = args.limit {
        query.push(format!("limit={limit}"));
    }
    let path = if query.is_empty() {
        "/api/nodes".to_owned()
    } else {
        format!("/api/nodes?{}", query.join("&"))
    };
    let list = api.get(&path)?;
    print(&api, &list, render::node_list);
    Ok(())
}

fn ping(args: PingArgs) -> Result<(), ClientError> {
    let api = Api::connect(&args.api)?;
    let id = api.resolve(&args.id)?;
    if let Some(from) = &args.from {
        return peer_ping(&api, &api.resolve(from)?, &id, args.count);
    }
    let mut replies = Vec::new();
    let mut failed = 0;
    for _ in 0..args.count {
        let (_, reply) = api.post(&format!("/api/nodes/{id}/poll"), &json!({}))?;
        if reply["outcome"] != "delivered" {
            failed += 1;
        }
        if !api.json {
            print!("{}", render::ping_line(&reply));
        }
        replies.push(reply);
    }
    if api.json {
        println!("{}", Value::Array(replies));
    }
    if failed > 0 {
        return Err(ClientError::Failed(format!(
            "{failed} of {} polls went unanswered",
            args.count
        )));
    }
    Ok(())
}

/// `fleetmesh ping --from`: the `from` node's `transfer` handler sends 64 bytes to `to` over
/// their session and answers the time and the path.
fn peer_ping(api: &Api, from: &str, to: &str, count: u32) -> Result<(), ClientError> {
    let node = api.get(&format!("/api/nodes/{to}"))?;
    let addr = node["addr"].as_str().unwrap_or_default().to_owned();
    let body = json!({"peer": to, "addr": addr, "bytes": 64}).to_string();
    let request = json!({"kind": "transfer", "body": body, "ttl_secs": 60, "wait_secs": 60});
    let (mut replies, mut failed) = (Vec::new(), 0);
    for _ in 0..count {
        let (_, reply) = api.post(&format!("/api/nodes/{from}/requests"), &request)?;
        let answered = reply["state"] == "answered" && reply["status"] == "ok";
        let answer = answered
            .then(|| serde_json::from_str::<Value>(reply["body"].as_str().unwrap_or_default()).ok())
            .flatten();
        if answer.is_none() {
            failed += 1;
        }
        if !api.json {
            print!("{}", render::peer_ping_line(to, &reply, answer.as_ref()));
        }
        replies.push(reply);
    }
    if api.json {
        println!("{}", Value::Array(replies));
    }
    if failed > 0 {
        return Err(ClientError::Failed(format!("{failed} of {count} pings went unanswered")));
    }
    Ok(())
}

/// Exit status 1 unless the reply's outcome is `delivered`.
fn succeeded(reply: &Value) -> Result<(), ClientError> {
    match reply["outcome"].as_str() {
        Some("delivered") => Ok(()),
        Some("pending") => Err(ClientError::Failed("no delivery report yet (pending)".into())),
        _ => Err(ClientError::Failed(format!(
            "not delivered: {}",
            reply["error"].as_str().unwrap_or("unknown reason")
        ))),
    }
}

pub(super) fn print(api: &Api, value: &Value, text: impl Fn(&Value) -> String) {
    if api.json {
        println!("{value}");
    } else {
        print!("{}", text(value));
    }
}

/// Percent-encodes a query value (tags and subnet keys are plain, but user input may not be).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("site:berlin"), "site%3Aberlin");
        assert_eq!(encode("a b&c"), "a%20b%26c");
        assert_eq!(encode("abc-1_2.3"), "abc-1_2.3");
    }
}
