//! Request handlers on a node: the application's code that answers the master's requests
//! ([`NodeBuilder::handler`](super::NodeBuilder::handler)).
//!
//! A request whose kind has a handler is answered by it, on its own task, whether or not the
//! application reads events: its output is the answer ([`ResponseStatus::OK`]), its error
//! the reason it failed ([`ResponseStatus::FAILED`]). Any other request is handed to the
//! application as [`NodeEvent::Request`] to answer with
//! [`NodeHandle::respond`](super::NodeHandle::respond), or answered
//! [`ResponseStatus::UNKNOWN_KIND`] at once when the node was built to refuse unknown kinds.

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc};

use tokio::sync::mpsc;

use super::machine::Command;
use crate::{overlay::NodeCommand, wire::ResponseStatus};

/// What a handler returns: its output, or why it failed.
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>>;

type Handler = Arc<dyn Fn(Vec<u8>) -> HandlerFuture + Send + Sync>;

/// The handlers by kind, and what to do with other kinds.
#[derive(Clone, Default)]
pub(crate) struct Handlers {
    by_kind: HashMap<String, Handler>,
    pub(crate) refuse_unknown: bool,
}

impl Handlers {
    pub(crate) fn add<F, Fut>(&mut self, kind: &str, f: F)
    where
        F: Fn(Vec<u8>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<u8>, String>> + Send + 'static,
    {
        self.by_kind.insert(kind.to_owned(), Arc::new(move |body| Box::pin(f(body))));
    }

    /// Handles request `id` if it can; false if it is the application's to answer.
    pub(crate) fn take(
        &self,
        id: u64,
        kind: &str,
        body: Vec<u8>,
        commands: &mpsc::Sender<Command>,
    ) -> bool {
        let Some(handler) = self.by_kind.get(kind) else {
            if self.refuse_unknown {
                let body = format!("no handler for {kind:?}").into_bytes();
                answer(commands.clone(), id, ResponseStatus::UNKNOWN_KIND, body);
                return true;
            }
            return false;
        };
        let (handler, commands) = (handler.clone(), commands.clone());
        tokio::spawn(async move {
            let (status, body) = match handler(body).await {
                Ok(output) => (ResponseStatus::OK, output),
                Err(why) => (ResponseStatus::FAILED, why.into_bytes()),
            };
            answer(commands, id, status, body);
        });
        true
    }
}

/// Sends the answer to the node's driver (without waiting: it may be full, never for long).
pub(crate) fn answer(
    commands: mpsc::Sender<Command>,
    id: u64,
    status: ResponseStatus,
    body: Vec<u8>,
) {
    tokio::spawn(async move {
        let respond = NodeCommand::Respond { id, status, body };
        if commands.send(Command::Node(respond, None)).await.is_err() {
            tracing::debug!(id, "node stopped before its answer was sent");
        }
    });
}
