//! The live event stream: the master's events as JSON lines, sent as server-sent events.

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use fleetmesh::{
    endpoint::Event as LinkEvent,
    overlay::{MasterEvent, PresenceEvent},
};
use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};

/// One master event as JSON (`{"type": …, …}`); `None` for link events the API does not show.
pub(crate) fn event_json(event: &MasterEvent) -> Option<String> {
    let value = match event {
        MasterEvent::Presence(PresenceEvent::Joined { node, lsn }) => {
            json!({ "type": "joined", "node": node.to_string(), "lsn": lsn.to_string() })
        }
        MasterEvent::Presence(PresenceEvent::Parted { node, reason }) => json!({
            "type": "parted", "node": node.to_string(), "reason": format!("{reason:?}").to_lowercase()
        }),
        MasterEvent::Presence(PresenceEvent::Moved { node, from, to }) => json!({
            "type": "moved", "node": node.to_string(), "from": from.to_string(), "to": to.to_string()
        }),
        MasterEvent::Presence(PresenceEvent::Rerouted { node, from, to }) => json!({
            "type": "rerouted", "node": node.to_string(), "from": from.to_string(), "to": to.to_string()
        }),
        MasterEvent::Delivered { id, node, rtt } => json!({
            "type": "delivered", "id": id, "node": node.to_string(), "rtt_ms": rtt.as_secs_f64() * 1000.0
        }),
        MasterEvent::DeliveryFailed { id, node, error } => json!({
            "type": "delivery_failed", "id": id, "node": node.to_string(), "error": error.to_string()
        }),
        MasterEvent::Response { .. } | MasterEvent::RequestFailed { .. } => {
            let (_, mut view) = super::results::ended(event)?;
            view["type"] =
                json!(if view["state"] == "answered" { "response" } else { "request_failed" });
            view
        }
        MasterEvent::FleetEnded { id, answered, unanswered, unreached } => json!({
            "type": "fleet_ended", "id": id, "answered": answered, "unanswered": unanswered,
            "unreached": unreached
        }),
        MasterEvent::Report { node, id, data } => {
            let mut view = json!({ "type": "report", "node": node.to_string(), "id": id });
            super::results::put_body(&mut view, data);
            view
        }
        MasterEvent::Link(LinkEvent::PeerEnrolled { peer, .. }) => {
            json!({ "type": "enrolled", "node": peer.to_string() })
        }
        _ => return None,
    };
    Some(value.to_string())
}

/// The SSE response over a subscription; a client too slow to keep up gets a `lagged` event
/// saying how many it missed (the buffer is bounded).
pub(crate) fn stream(
    receiver: broadcast::Receiver<String>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = futures_util::stream::unfold(receiver, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(json) => Event::default().data(json),
            Err(RecvError::Lagged(n)) => {
                Event::default().data(json!({ "type": "lagged", "missed": n }).to_string())
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
