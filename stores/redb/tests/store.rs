//! The redb store against the `Store` contract: ordering, restarts, corruption.

use std::{
    fs,
    io::{Seek, SeekFrom, Write},
    path::Path,
};

use fleetmesh_driver::{Store, StoreError};
use fleetmesh_redb::RedbStore;

fn open(path: &Path) -> RedbStore {
    RedbStore::open(path).expect("open")
}

#[tokio::test]
async fn put_get_remove_and_separate_tables() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("db.redb"));
    assert_eq!(s.get("records", b"k").await.unwrap(), None, "missing table reads as empty");
    assert!(s.scan("records").await.unwrap().is_empty());
    assert!(!s.remove("records", b"k").await.unwrap());
    s.put("records", b"k", b"one").await.unwrap();
    s.put("routing", b"k", b"other").await.unwrap();
    assert_eq!(s.get("records", b"k").await.unwrap().as_deref(), Some(&b"one"[..]));
    s.put("records", b"k", b"two").await.unwrap();
    assert_eq!(s.get("records", b"k").await.unwrap().as_deref(), Some(&b"two"[..]));
    assert!(s.remove("records", b"k").await.unwrap());
    assert!(!s.remove("records", b"k").await.unwrap());
    assert_eq!(s.get("records", b"k").await.unwrap(), None);
    assert_eq!(s.get("routing", b"k").await.unwrap().as_deref(), Some(&b"other"[..]));
    // Empty keys and values are fine.
    s.put("records", b"", b"").await.unwrap();
    assert_eq!(s.get("records", b"").await.unwrap().as_deref(), Some(&b""[..]));
}

#[tokio::test]
async fn scan_is_in_ascending_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("db.redb"));
    let keys: [&[u8]; 6] = [b"b", b"a", &[0xff], b"ab", &[0x00, 0x01], b""];
    for (i, k) in keys.iter().enumerate() {
        s.put("t", k, &[i as u8]).await.unwrap();
    }
    let got: Vec<Vec<u8>> = s.scan("t").await.unwrap().into_iter().map(|(k, _)| k).collect();
    let mut want: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
    want.sort();
    assert_eq!(got, want);
    let values: Vec<(Vec<u8>, Vec<u8>)> = s.scan("t").await.unwrap();
    assert!(values.contains(&(b"ab".to_vec(), vec![3])));
}

#[tokio::test]
async fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let s = open(&path);
        for i in 0..100u32 {
            s.put("records", &i.to_be_bytes(), &[i as u8; 32]).await.unwrap();
        }
        s.remove("records", &7u32.to_be_bytes()).await.unwrap();
        s.put("routing", b"peer", b"addr").await.unwrap();
        // Dropped without any explicit flush or close: every call was already durable.
    }
    let s = open(&path);
    let records = s.scan("records").await.unwrap();
    assert_eq!(records.len(), 99);
    assert_eq!(s.get("records", &7u32.to_be_bytes()).await.unwrap(), None);
    assert_eq!(s.get("records", &8u32.to_be_bytes()).await.unwrap(), Some(vec![8; 32]));
    assert_eq!(s.get("routing", b"peer").await.unwrap().as_deref(), Some(&b"addr"[..]));
}

#[tokio::test]
async fn clones_share_the_database_across_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("db.redb"));
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.put("t", &[i], &[i]).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.scan("t").await.unwrap().len(), 8);
}

fn assert_corrupt(result: Result<RedbStore, StoreError>) {
    match result {
        Err(StoreError::Corrupt(_)) => {}
        other => panic!("expected StoreError::Corrupt, got {other:?}"),
    }
}

#[test]
fn a_file_that_is_not_a_database_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
    assert_corrupt(RedbStore::open(&path));
    // A short file too.
    fs::write(&path, b"hello").unwrap();
    assert_corrupt(RedbStore::open(&path));
}

/// Overwrites `len` bytes of the file at `path` from `at` with a pattern.
fn damage(path: &Path, at: u64, len: usize) {
    let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    let garbage: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(7)).collect();
    f.write_all(&garbage).unwrap();
    f.sync_all().unwrap();
}

#[tokio::test]
async fn a_database_with_a_damaged_header_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    open(&path).put("t", b"k", b"v").await.unwrap();
    // Keep the magic number, overwrite the rest of the header.
    damage(&path, 9, 4096);
    assert_corrupt(RedbStore::open(&path));
}

#[tokio::test]
async fn damaged_pages_give_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let mut detected = 0;
    for (i, fraction) in [0.1, 0.2, 0.3, 0.5, 0.7, 0.9].into_iter().enumerate() {
        let path = dir.path().join(format!("db{i}.redb"));
        {
            let s = open(&path);
            for key in 0..300u32 {
                s.put("t", &key.to_be_bytes(), &[7; 1000]).await.unwrap();
            }
        }
        let len = fs::metadata(&path).unwrap().len();
        damage(&path, (len as f64 * fraction) as u64, 8192);
        // Whatever the damage hit (free space, a value, a branch page), every call returns:
        // data, or StoreError::Corrupt. Never a panic, never another error.
        let s = match RedbStore::open(&path) {
            Ok(s) => s,
            Err(StoreError::Corrupt(_)) => {
                detected += 1;
                continue;
            }
            Err(e) => panic!("{fraction}: open: {e:?}"),
        };
        match s.scan("t").await {
            Ok(entries) => assert!(entries.len() <= 300),
            Err(StoreError::Corrupt(_)) => detected += 1,
            Err(e) => panic!("{fraction}: scan: {e:?}"),
        }
    }
    // With this redb version and layout, at least one of the damaged files is detected.
    assert!(detected > 0);
}

#[test]
fn a_missing_directory_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    match RedbStore::open(dir.path().join("no/such/dir/db.redb")) {
        Err(StoreError::Io(_)) => {}
        other => panic!("expected StoreError::Io, got {other:?}"),
    }
}
