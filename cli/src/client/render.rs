//! The admin commands' text output (with `--json` they print the API's JSON instead).

use std::fmt::Write;

use serde_json::Value;

/// Digits of an id shown in tables (`nodes ID` accepts any unique prefix).
const SHORT: usize = 12;

fn short(id: &Value) -> &str {
    let id = id.as_str().unwrap_or("-");
    &id[..id.len().min(SHORT)]
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn rtt(value: &Value) -> String {
    value.as_f64().map_or_else(|| "-".into(), |ms| format!("{ms:.1} ms"))
}

/// `fleetmesh status`.
pub(super) fn status(s: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "master   {}", text(&s["master"]));
    let _ = writeln!(out, "network  {}", text(&s["network"]));
    let _ = writeln!(
        out,
        "nodes    {} present of {} known · {} LSNs · {} subnets",
        s["present"], s["known"], s["lsns"], s["subnets"]
    );
    let empty = Vec::new();
    for subnet in s["topology"]["subnets"].as_array().unwrap_or(&empty) {
        let _ = writeln!(out, "\nsubnet {}", text(&subnet["key"]));
        for lsn in subnet["lsns"].as_array().unwrap_or(&empty) {
            let children = lsn["children"].as_array().map_or(0, Vec::len);
            let _ = writeln!(
                out,
                "  LSN {}  {}  via {}  {} children",
                short(&lsn["id"]),
                text(&lsn["addr"]),
                text(&lsn["path"]),
                children
            );
        }
    }
    let pending = s["topology"]["pending"].as_array().map_or(0, Vec::len);
    if pending > 0 {
        let _ = writeln!(out, "\n{pending} nodes waiting for an LSN");
    }
    out
}

/// `fleetmesh nodes`.
pub(super) fn node_list(list: &Value) -> String {
    let mut out = format!(
        "{:<12}  {:<7}  {:<12}  {:<24}  {:>9}  TAGS\n",
        "ID", "PRESENT", "LSN", "ADDRESS", "RTT"
    );
    let empty = Vec::new();
    let nodes = list["nodes"].as_array().unwrap_or(&empty);
    for n in nodes {
        let presence = match (n["present"].as_bool(), n["is_lsn"].as_bool()) {
            (Some(true), Some(true)) => "LSN",
            (Some(true), _) => "yes",
            _ => "no",
        };
        let tags: Vec<&str> =
            n["tags"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let _ = writeln!(
            out,
            "{:<12}  {:<7}  {:<12}  {:<24}  {:>9}  {}",
            short(&n["id"]),
            presence,
            short(&n["lsn"]),
            text(&n["addr"]),
            rtt(&n["rtt_ms"]),
            tags.join(",")
        );
    }
    let _ = writeln!(out, "{} shown of {} known", nodes.len(), list["total"]);
    out
}

/// `fleetmesh nodes ID`.
pub(super) fn node(n: &Value) -> String {
    let mut out = String::new();
    let route: Vec<&str> =
        n["route"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let tags: Vec<&str> =
        n["tags"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let rows = [
        ("id", text(&n["id"])),
        ("present", text(&n["present"])),
        ("lsn", if n["is_lsn"] == true { "this node".into() } else { text(&n["lsn"]) }),
        ("subnet", text(&n["subnet"])),
        ("address", text(&n["addr"])),
        ("route", if route.is_empty() { "-".into() } else { route.join(" → ") }),
        ("rtt", rtt(&n["rtt_ms"])),
        ("tags", if tags.is_empty() { "-".into() } else { tags.join(", ") }),
        ("first seen", text(&n["first_seen"])),
        ("last seen", text(&n["last_seen"])),
    ];
    for (key, value) in rows {
        let _ = writeln!(out, "{key:<11} {value}");
    }
    out
}

/// `fleetmesh send`.
pub(super) fn outcome(reply: &Value) -> String {
    match reply["outcome"].as_str() {
        Some("delivered") => {
            format!("delivered to {} in {}\n", short(&reply["node"]), rtt(&reply["rtt_ms"]))
        }
        Some("pending") => format!("sent to {}, no delivery report yet\n", short(&reply["node"])),
        _ => format!("not delivered to {}: {}\n", short(&reply["node"]), text(&reply["error"])),
    }
}

/// One line of `fleetmesh ping`.
pub(super) fn ping_line(reply: &Value) -> String {
    match reply["outcome"].as_str() {
        Some("delivered") => {
            format!("reply from {}: {}\n", short(&reply["node"]), rtt(&reply["rtt_ms"]))
        }
        Some("pending") => format!("no reply from {} yet\n", short(&reply["node"])),
        _ => format!("no reply from {}: {}\n", short(&reply["node"]), text(&reply["error"])),
    }
}

/// One line of `fleetmesh ping --from`: `answer` is the `transfer` handler's, if it ran.
pub(super) fn peer_ping_line(to: &str, reply: &Value, answer: Option<&Value>) -> String {
    let cut = |id: &str| id[..id.len().min(SHORT)].to_owned();
    let to = cut(to);
    let Some(a) = answer else {
        let why = reply["error"].as_str().or(reply["body"].as_str()).unwrap_or("no answer");
        return format!("no reply from {to}: {why}\n");
    };
    let path = match a["via"].as_str() {
        Some(gsn) => format!("relayed via GSN {} (hole punching failed)", cut(gsn)),
        None => "direct".to_owned(),
    };
    let ms = a["millis"].as_f64().unwrap_or_default();
    format!("reply from {to}: {ms:.1} ms, {path}\n")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_node_list_shows_short_ids_presence_and_tags() {
        let list = json!({"total": 3, "count": 1, "nodes": [{
            "id": "0123456789abcdef0123456789abcdef01234567", "present": true, "is_lsn": false,
            "lsn": "fedcba9876543210fedcba9876543210fedcba98", "addr": "127.0.0.1:1",
            "rtt_ms": 1.25, "tags": ["site:a", "x"]
        }]});
        let out = super::node_list(&list);
        let row = out.lines().nth(1).unwrap();
        assert!(row.starts_with("0123456789ab  yes      fedcba987654  127.0.0.1:1"), "{row}");
        assert!(row.ends_with("1.2 ms  site:a,x") || row.ends_with("1.3 ms  site:a,x"), "{row}");
        assert_eq!(out.lines().last().unwrap(), "1 shown of 3 known");
    }

    #[test]
    fn a_peer_ping_names_its_path() {
        let to = "0123456789abcdef0123456789abcdef01234567";
        let ok = json!({"status": "ok"});
        let direct = json!({"millis": 1.25, "path": "direct", "via": null});
        assert_eq!(
            super::peer_ping_line(to, &ok, Some(&direct)),
            "reply from 0123456789ab: 1.2 ms, direct\n"
        );
        let relayed = json!({"millis": 3.0, "path": "relayed", "via": "fedcba9876543210fedcba9876543210fedcba98"});
        assert_eq!(
            super::peer_ping_line(to, &ok, Some(&relayed)),
            "reply from 0123456789ab: 3.0 ms, relayed via GSN fedcba987654 (hole punching failed)\n"
        );
        let failed = json!({"state": "failed", "error": "refused by the peer: busy"});
        assert_eq!(
            super::peer_ping_line(to, &failed, None),
            "no reply from 0123456789ab: refused by the peer: busy\n"
        );
    }

    #[test]
    fn a_failed_delivery_names_its_reason() {
        let out = super::outcome(&json!({"node": "ab", "outcome": "failed", "error": "timeout"}));
        assert_eq!(out, "not delivered to ab: timeout\n");
    }
}
