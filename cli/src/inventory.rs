//! The node daemon's inventory collector: what `fleetmesh inventory NODE` shows at the master.
//!
//! The document is a flat map of paths to values ([`InventoryDocument`]); the node sets it at
//! start and again every `inventory_interval`, and the master receives only what changed
//! since the version it acknowledged. So only facts that stay put go in (no uptime, free space
//! or counters: they would make every collection a change). Paths:
//!
//! * `os/name`, `os/version`, `os/long_version`, `os/kernel`, `os/arch`, `host/name`
//! * `cpu/model`, `cpu/count` (logical CPUs), `memory/total_bytes`
//! * `disk/MOUNT/size_bytes`, `disk/MOUNT/fs` (e.g. `disk//size_bytes` for `/`)
//! * `net/IFACE/mac`, `net/IFACE/addrs` (`addr/prefix`, comma-separated, sorted)
//! * `pkg/NAME` → version, for each installed Debian package, read from
//!   [`DPKG_STATUS`] where it is readable (a second architecture's copy as `pkg/NAME:ARCH`).
//!
//! The daemon adds its own (`node.rs`): `fleetmesh/version`, `fleetmesh/commands`.

use std::{collections::BTreeMap, path::Path};

use fleetmesh::overlay::inventory::InventoryDocument;
use sysinfo::{CpuRefreshKind, Disks, Networks, RefreshKind, System};

/// Where dpkg keeps the state of every package it knows.
pub(crate) const DPKG_STATUS: &str = "/var/lib/dpkg/status";

/// The most bytes of the dpkg status file read (a large Debian host has about 10 MB).
const MAX_DPKG_STATUS: u64 = 64 << 20;

/// Collects this host's inventory (blocking: reads `/proc`, `/sys` and the dpkg status).
pub(crate) fn collect() -> InventoryDocument {
    let mut doc = InventoryDocument::new();
    let mut put = |key: String, value: String| {
        if !value.is_empty() {
            doc.insert(key, value);
        }
    };
    let some = |v: Option<String>| v.unwrap_or_default();
    put("os/name".into(), some(System::name()));
    put("os/version".into(), some(System::os_version()));
    put("os/long_version".into(), some(System::long_os_version()));
    put("os/kernel".into(), some(System::kernel_version()));
    put("os/arch".into(), System::cpu_arch());
    put("host/name".into(), some(System::host_name()));

    let mut system =
        System::new_with_specifics(RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()));
    system.refresh_memory();
    let cpus = system.cpus();
    put("cpu/count".into(), cpus.len().to_string());
    put("cpu/model".into(), cpus.first().map(|c| c.brand().trim().to_owned()).unwrap_or_default());
    put("memory/total_bytes".into(), system.total_memory().to_string());

    for disk in Disks::new_with_refreshed_list().list() {
        let mount = disk.mount_point().display();
        put(format!("disk/{mount}/size_bytes"), disk.total_space().to_string());
        put(format!("disk/{mount}/fs"), disk.file_system().to_string_lossy().into_owned());
    }
    for (name, data) in Networks::new_with_refreshed_list().list() {
        let mac = data.mac_address();
        if !mac.is_unspecified() {
            put(format!("net/{name}/mac"), mac.to_string());
        }
        let mut addrs: Vec<String> = data.ip_networks().iter().map(|n| n.to_string()).collect();
        addrs.sort();
        put(format!("net/{name}/addrs"), addrs.join(","));
    }
    for (name, version) in dpkg_packages(Path::new(DPKG_STATUS)) {
        doc.insert(format!("pkg/{name}"), version);
    }
    doc
}

/// The installed packages in the dpkg status file at `path`; none when it is missing or
/// unreadable (not a Debian host).
fn dpkg_packages(path: &Path) -> BTreeMap<String, String> {
    use std::io::Read;
    let mut text = Vec::new();
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(MAX_DPKG_STATUS).read_to_end(&mut text).map(|_| ()));
    match read {
        Ok(()) => parse_dpkg_status(&String::from_utf8_lossy(&text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(error) => {
            tracing::debug!(%error, path = %path.display(), "package list not read");
            BTreeMap::new()
        }
    }
}

/// The installed packages (name → version) in the text of a dpkg status file: stanzas
/// separated by blank lines, each with `Package`, `Status` (its last word `installed`) and
/// `Version`. Stanzas without those are skipped; nothing in the text can make it panic.
pub(crate) fn parse_dpkg_status(text: &str) -> BTreeMap<String, String> {
    let mut packages = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let (mut name, mut version, mut arch, mut installed) = (None, None, None, false);
        for line in stanza.lines() {
            // Continuation lines (a description's body, conffiles) start with a space.
            if line.starts_with([' ', '\t']) {
                continue;
            }
            let Some((field, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            match field {
                "Package" if !value.is_empty() => name = Some(value),
                "Version" if !value.is_empty() => version = Some(value),
                "Architecture" => arch = Some(value),
                "Status" => installed = value.split_whitespace().last() == Some("installed"),
                _ => {}
            }
        }
        let (Some(name), Some(version), true) = (name, version, installed) else { continue };
        let key = match (packages.contains_key(name), arch) {
            (true, Some(arch)) => format!("{name}:{arch}"),
            _ => name.to_owned(),
        };
        packages.insert(key, version.to_owned());
    }
    packages
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
Package: zstd
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 1.5.4+dfsg2-5
Description: fast lossless compression algorithm -- CLI tool
 Zstd, short for Zstandard, is a fast lossless compression algorithm.
 Version: 9.9 (a continuation line, not a field)

Package: removed-pkg
Status: deinstall ok config-files
Architecture: amd64
Version: 2.0

Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u4

Package: libc6
Status: hold ok installed
Architecture: i386
Version: 2.36-9+deb12u4

Package: half-installed
Status: install reinstreq half-installed
Version: 0.1
";

    #[test]
    fn installed_packages_are_read_with_their_versions() {
        let packages = parse_dpkg_status(SAMPLE);
        let want: BTreeMap<String, String> = [
            ("libc6", "2.36-9+deb12u4"),
            ("libc6:i386", "2.36-9+deb12u4"),
            ("zstd", "1.5.4+dfsg2-5"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        assert_eq!(packages, want);
    }

    #[test]
    fn malformed_status_text_gives_what_is_whole_and_never_panics() {
        assert!(parse_dpkg_status("").is_empty());
        assert!(parse_dpkg_status("\n\n\n:::\n\0\u{fffd}").is_empty());
        // No version, no status, an empty name: skipped; the whole stanza after them is kept.
        let text = "Package: a\nStatus: install ok installed\n\nPackage: b\nVersion: 1\n\n\
                    Package:\nStatus: install ok installed\nVersion: 1\n\n\
                    Package: c\r\nStatus: install ok installed\r\nVersion: 3\r\n";
        let packages = parse_dpkg_status(text);
        assert_eq!(packages.into_iter().collect::<Vec<_>>(), [("c".into(), "3".into())]);
        // Truncated anywhere (a file read while dpkg rewrites it): no panic.
        for cut in 0..SAMPLE.len() {
            if SAMPLE.is_char_boundary(cut) {
                let _ = parse_dpkg_status(&SAMPLE[..cut]);
            }
        }
    }

    #[test]
    fn a_missing_status_file_is_no_packages() {
        assert!(dpkg_packages(Path::new("/nonexistent/dpkg/status")).is_empty());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status");
        std::fs::write(&path, SAMPLE).unwrap();
        assert_eq!(dpkg_packages(&path).len(), 3);
    }

    #[test]
    fn the_collected_inventory_names_this_host() {
        let doc = collect();
        assert_eq!(doc.get("host/name").cloned(), System::host_name());
        assert!(doc["cpu/count"].parse::<usize>().unwrap() >= 1, "{doc:?}");
        assert!(doc["memory/total_bytes"].parse::<u64>().unwrap() > 0);
        assert!(doc.contains_key("os/kernel") && doc.contains_key("os/arch"), "{doc:?}");
        assert!(doc.keys().any(|k| k.starts_with("disk/")), "{doc:?}");
    }
}
