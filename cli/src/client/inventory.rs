//! `fleetmesh inventory`: a node's inventory as the master holds it
//! (`GET /api/nodes/{id}/inventory`).

use serde_json::Value;

use super::{commands::print, Api, ApiArgs, ClientError};

/// `fleetmesh inventory`.
#[derive(clap::Args, Debug)]
pub(crate) struct InventoryArgs {
    /// The node's id (or a unique prefix).
    id: String,
    /// Only the entries whose path starts with this (`os/`, `pkg/`, `net/eth0/`, …).
    #[arg(default_value = "")]
    prefix: String,
    #[command(flatten)]
    api: ApiArgs,
}

/// Prints the node's inventory: one `PATH  VALUE` line per entry (or the API's JSON).
pub(super) fn inventory(args: InventoryArgs) -> Result<(), ClientError> {
    let api = Api::connect(&args.api)?;
    let id = api.resolve(&args.id)?;
    let mut reply = api.get(&format!("/api/nodes/{id}/inventory"))?;
    if let Some(entries) = reply["entries"].as_object_mut() {
        entries.retain(|path, _| path.starts_with(&args.prefix));
    }
    print(&api, &reply, render);
    Ok(())
}

/// The inventory as text: a heading, then the entries with their values aligned.
fn render(reply: &Value) -> String {
    let empty = serde_json::Map::new();
    let entries = reply["entries"].as_object().unwrap_or(&empty);
    let width = entries.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    let mut out = format!(
        "node {}  version {}  {} entries\n",
        reply["node"].as_str().unwrap_or("?"),
        reply["version"],
        entries.len()
    );
    for (path, value) in entries {
        out.push_str(&format!("{path:width$}  {}\n", value.as_str().unwrap_or_default()));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::render;

    #[test]
    fn entries_are_listed_with_aligned_values() {
        let reply = json!({
            "node": "ab",
            "version": 7,
            "entries": { "host/name": "web-1", "os/kernel": "6.1.0", "pkg/zstd": "1.5.4" },
        });
        assert_eq!(
            render(&reply),
            "node ab  version 7  3 entries\nhost/name  web-1\nos/kernel  6.1.0\npkg/zstd   1.5.4\n"
        );
    }
}
