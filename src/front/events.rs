//! Handing the protocol's events to the application without letting it hold the protocol up.
//!
//! The driver waits for room in its event channel, so an application that stopped reading
//! would stall its node or master: timers, answers, presence. The front door puts this relay
//! between them. Up to [`NODE_EVENTS`] (a node) or [`MASTER_EVENTS`] (a master: a morning's
//! join storm of a large fleet is a burst of presence events) wait for the application; beyond
//! that, events are dropped and counted, with a warning in the log once per thousand. An
//! application that dropped its receiver gets nothing more, and the protocol runs on.

use tokio::sync::mpsc;

/// Events that wait for a node's application.
pub(crate) const NODE_EVENTS: usize = 1024;
/// Events that wait for a master's application (some 100 bytes each).
pub(crate) const MASTER_EVENTS: usize = 65_536;

/// The application's side of the relay.
pub(crate) struct Relay<E> {
    to: Option<mpsc::Sender<E>>,
    dropped: u64,
    /// What the events are from, for the warning ("node", "master").
    source: &'static str,
}

impl<E> Relay<E> {
    /// A relay and the receiver the application reads.
    pub(crate) fn new(source: &'static str, capacity: usize) -> (Self, mpsc::Receiver<E>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Relay { to: Some(tx), dropped: 0, source }, rx)
    }

    /// Passes `event` on, or drops it if the application is behind (then false).
    pub(crate) fn forward(&mut self, event: E) -> bool {
        let Some(tx) = &self.to else { return false };
        match tx.try_send(event) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped += 1;
                if self.dropped % 1000 == 1 {
                    tracing::warn!(
                        source = self.source,
                        dropped = self.dropped,
                        "the application is not reading events; events dropped"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.to = None,
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_application_channel_drops_instead_of_waiting() {
        let (mut relay, mut rx) = Relay::new("test", NODE_EVENTS);
        for i in 0..NODE_EVENTS + 10 {
            relay.forward(i); // Never waits.
        }
        assert_eq!(relay.dropped, 10);
        assert_eq!(rx.recv().await, Some(0));
        drop(rx);
        relay.forward(1);
        assert!(relay.to.is_none(), "a closed receiver ends the relay's sending");
    }
}
