//! The web view in a real headless Chromium (Debian's `chromium`, installed by the test when
//! missing): a master daemon with four node daemons over UDP on loopback; the page lists them,
//! draws the topology, follows the event stream, and shows an LSN crash as it happens.

mod common;

use std::{net::SocketAddr, path::Path, time::Duration};

use common::{browser::Browser, field, fleetmesh, free_port, http::request, start_nodes, LIMIT};
use serde_json::json;

fn master_config(dir: &Path, port: u16) -> String {
    format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\n\n[log]\nformat = \"json\"\n",
        dir.join("master")
    )
}

#[test]
fn the_web_view_shows_the_fleet_and_follows_an_lsn_crash_live() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("master.toml");
    std::fs::write(&config, master_config(dir.path(), free_port())).unwrap();
    let mut master = fleetmesh("master", &["master", "--config", config.to_str().unwrap()]);
    let admin: SocketAddr =
        field(&master.wait_message("master running", LIMIT), "admin").parse().unwrap();
    let token = std::fs::read_to_string(dir.path().join("master/admin.token")).unwrap();
    let token = token.trim();
    let body = json!({"uses": 4, "tags": ["site:web"]});
    let created = request(admin, "POST", "/api/tokens", Some(token), Some(&body));
    let link = created.body["link"].as_str().expect("a link").to_owned();

    let node_dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<&Path> = node_dirs.iter().map(|d| d.path()).collect();
    let (mut nodes, ids) = start_nodes(&paths, &link);

    let mut browser = Browser::launch();
    browser.navigate(&format!("http://{admin}/#token={token}"));
    let shown = browser.wait_until(
        "document.querySelectorAll('#rows .row[data-present=\"true\"]').length === 4 \
         && document.getElementById('summary').textContent.startsWith('4 present of 4 known')",
        LIMIT,
        "four present nodes",
    );
    println!("web view: all four nodes present on the page {} ms after loading", shown.as_millis());
    // The token left the address bar once read.
    assert_eq!(browser.eval("location.hash"), json!(""));

    let lsn = request(admin, "GET", "/api/nodes?present=true", Some(token), None).body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["is_lsn"] == true)
        .expect("an LSN")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    browser.wait_until(
        &format!("!!document.querySelector('#topology [data-lsn=\"{lsn}\"]')"),
        LIMIT,
        "the LSN in the topology",
    );
    for id in &ids {
        let row = format!("#rows .row[data-node=\"{id}\"]");
        assert_eq!(browser.eval(&format!("!!document.querySelector('{row}')")), json!(true));
    }

    // Search narrows the list to one node.
    let child = ids.iter().find(|id| **id != lsn).unwrap();
    browser.eval(&format!(
        "(() => {{ const s = document.getElementById('search'); s.value = '{}'; \
         s.dispatchEvent(new Event('input')); }})()",
        &child[..10]
    ));
    assert_eq!(browser.eval("document.querySelectorAll('#rows .row').length"), json!(1));
    browser.eval(
        "(() => { const s = document.getElementById('search'); s.value = ''; \
         s.dispatchEvent(new Event('input')); })()",
    );

    // Crash the LSN (no goodbye): the page learns it from the event stream, without a reload.
    let index = ids.iter().position(|id| *id == lsn).unwrap();
    nodes[index].signal("-KILL");
    let followed = browser.wait_until(
        &format!(
            "!!document.querySelector('#events li[data-type=\"parted\"][data-node=\"{lsn}\"]') \
             && document.querySelector('#rows .row[data-node=\"{lsn}\"]')?.dataset.present === 'false' \
             && [...document.querySelectorAll('#topology [data-lsn]')].some(e => e.dataset.lsn !== '{lsn}')"
        ),
        Duration::from_secs(120),
        "the crashed LSN parted and a new LSN in its place",
    );
    println!("web view: the LSN crash showed on the page after {} ms", followed.as_millis());
    assert_eq!(browser.eval("document.getElementById('live').className"), json!("on"));

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-view.png");
    browser.screenshot(&shot);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot: {} bytes",
        png.len()
    );
    println!("web view: screenshot at {}", shot.display());

    // Without a token the page asks for one; a wrong one is refused.
    browser.eval("sessionStorage.clear()");
    browser.navigate(&format!("http://{admin}/"));
    browser.wait_until(
        "document.getElementById('login').hidden === false",
        LIMIT,
        "the login form",
    );
    browser.navigate(&format!("http://{admin}/#token=wrong"));
    browser.wait_until(
        "document.getElementById('login-error').textContent.includes('refused')",
        LIMIT,
        "the refused token",
    );

    drop(browser);
    for node in &mut nodes {
        node.signal("-TERM");
    }
    master.signal("-TERM");
    assert_eq!(master.wait_exit(LIMIT), Some(0));
}
