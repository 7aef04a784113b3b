//! Requests through the front door over real UDP on loopback: a node's handler answers, an
//! unknown kind is refused, the application answers the rest; a request queued for an absent
//! node survives the master's restart and reaches the node when it comes back.

use std::time::Duration;

mod loopback;

use loopback::{master, node, until};

use fleetmesh::{
    overlay::{MasterEvent, NodeEvent, RequestId},
    wire::ResponseStatus,
    MasterHandle, NodeId, TokenOptions,
};

const HOUR: Duration = Duration::from_secs(3600);

/// The end of request `id` at the master: `(node, status, body)`, or the failure's text.
async fn end(
    master: &mut MasterHandle,
    id: RequestId,
) -> Result<(NodeId, ResponseStatus, Vec<u8>), String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(60), master.next_event()).await {
            Ok(Some(MasterEvent::Response { id: i, node, status, body })) if i == id => {
                return Ok((node, status, body))
            }
            Ok(Some(MasterEvent::RequestFailed { id: i, error, .. })) if i == id => {
                return Err(error.to_string())
            }
            Ok(Some(_)) => {}
            other => panic!("request {id} did not end: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_answer_unknown_kinds_go_to_the_application_and_answers_come_back() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut master = master(dirs[0].path(), 0).await;
    let link = master.create_token(TokenOptions::default()).unwrap();
    let mut n = node(dirs[1].path())
        .join(link)
        .handler("upper", |body: Vec<u8>| async move { Ok(body.to_ascii_uppercase()) })
        .handler("fail", |_| async { Err("disk full".to_owned()) })
        .start()
        .await
        .unwrap();
    let id = n.id();
    until("the node present", || master.is_present(&id)).await;

    let upper = master.request(id, "upper", b"hello", HOUR).await.unwrap();
    assert_eq!(end(&mut master, upper).await, Ok((id, ResponseStatus::OK, b"HELLO".to_vec())));
    let fail = master.request(id, "fail", b"", HOUR).await.unwrap();
    assert_eq!(
        end(&mut master, fail).await,
        Ok((id, ResponseStatus::FAILED, b"disk full".to_vec()))
    );
    // No handler: the application gets it and answers.
    let other = master.request(id, "inventory", b"{}", HOUR).await.unwrap();
    let got = loop {
        match tokio::time::timeout(Duration::from_secs(30), n.next_event()).await {
            Ok(Some(NodeEvent::Request { id, kind, body })) => break (id, kind, body),
            Ok(Some(_)) => {}
            e => panic!("no request event: {e:?}"),
        }
    };
    assert_eq!(got, (other, "inventory".to_owned(), b"{}".to_vec()));
    n.respond(other, ResponseStatus::OK, b"{\"os\":\"linux\"}".to_vec()).await.unwrap();
    assert_eq!(
        end(&mut master, other).await,
        Ok((id, ResponseStatus::OK, b"{\"os\":\"linux\"}".to_vec()))
    );
    // The node's own reports reach the master too.
    n.report(5, b"low battery".to_vec()).await.unwrap();
    let report = loop {
        match tokio::time::timeout(Duration::from_secs(30), master.next_event()).await {
            Ok(Some(MasterEvent::Report { node, id: 5, data })) => break (node, data),
            Ok(Some(_)) => {}
            e => panic!("no report: {e:?}"),
        }
    };
    assert_eq!(report, (id, b"low battery".to_vec()));
    n.shutdown().await;
    master.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_for_an_absent_node_survives_the_masters_restart() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut m = master(dirs[0].path(), 0).await;
    let port = m.port();
    let link = m.create_token(TokenOptions::default()).unwrap();
    let first =
        node(dirs[1].path()).join(link).refuse_unknown_requests(true).start().await.unwrap();
    let id = first.id();
    until("the node present", || m.is_present(&id)).await;
    // An unknown kind is refused at once by a node built to refuse them.
    let unknown = m.request(id, "reboot", b"", HOUR).await.unwrap();
    let (_, status, _) = end(&mut m, unknown).await.unwrap();
    assert_eq!(status, ResponseStatus::UNKNOWN_KIND);
    first.shutdown().await;
    until("the node gone", || !m.is_present(&id)).await;

    let queued = m.request(id, "upper", b"queued while away", HOUR).await.unwrap();
    m.shutdown().await;
    let mut m = master(dirs[0].path(), port).await;
    let back = node(dirs[1].path())
        .handler("upper", |body: Vec<u8>| async move { Ok(body.to_ascii_uppercase()) })
        .start()
        .await
        .unwrap();
    assert_eq!(
        end(&mut m, queued).await,
        Ok((id, ResponseStatus::OK, b"QUEUED WHILE AWAY".to_vec()))
    );
    back.shutdown().await;
    m.shutdown().await;
}
