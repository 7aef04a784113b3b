//! One open connection: its write half, its idle clock and its close signal.

use std::{
    io,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, PoisonError,
    },
    time::Duration,
};

use tokio::{
    io::AsyncWriteExt,
    sync::{self, Notify},
    time::Instant,
};

use crate::net::BoxWrite;

/// A connection to one peer, shared by the senders and the connection's reader task.
///
/// Closing is a flag plus a signal to the reader, which then drops the read half and removes
/// the connection from the table; the write half goes when the last sender lets go.
pub(crate) struct Conn {
    id: u64,
    peer: SocketAddr,
    writer: sync::Mutex<BoxWrite>,
    last_activity: Mutex<Instant>,
    closed: AtomicBool,
    close_signal: Notify,
}

impl Conn {
    /// A connection filed under `peer`, the peer's listening address.
    pub(crate) fn new(id: u64, peer: SocketAddr, writer: BoxWrite) -> Self {
        Self {
            id,
            peer,
            writer: sync::Mutex::new(writer),
            last_activity: Mutex::new(Instant::now()),
            closed: AtomicBool::new(false),
            close_signal: Notify::new(),
        }
    }

    /// Tells this connection apart from a later one to the same peer.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The peer's listening address.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Records a frame sent or received now.
    pub(crate) fn touch(&self) {
        *self.last_activity.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// When the connection becomes idle if nothing else happens.
    pub(crate) fn idle_deadline(&self, idle_timeout: Duration) -> Instant {
        *self.last_activity.lock().unwrap_or_else(PoisonError::into_inner) + idle_timeout
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Marks the connection unusable and wakes its reader so it tears the connection down.
    pub(crate) fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            // `notify_one` keeps a permit if the reader is not waiting yet, so it cannot miss it.
            self.close_signal.notify_one();
        }
    }

    /// Completes once [`close`](Self::close) has been called. Only the reader task waits here.
    pub(crate) async fn closed(&self) {
        self.close_signal.notified().await;
    }

    /// Writes one whole frame, or fails and closes the connection.
    ///
    /// A frame half written (the caller's future dropped, a timeout, an error) leaves the
    /// stream out of step with the peer's decoder, so every path that does not finish the
    /// frame closes the connection.
    pub(crate) async fn write_frame(&self, frame: &[u8], timeout: Duration) -> io::Result<()> {
        let mut writer = self.writer.lock().await;
        if self.is_closed() {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "connection closed"));
        }
        let guard = CloseUnlessDone { conn: self, done: false };
        let write = async {
            writer.write_all(frame).await?;
            writer.flush().await
        };
        let result = match tokio::time::timeout(timeout, write).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "frame write timed out")),
        };
        if result.is_ok() {
            guard.finish();
            self.touch();
        }
        result
    }
}

/// Closes the connection when dropped before [`finish`](Self::finish).
struct CloseUnlessDone<'a> {
    conn: &'a Conn,
    done: bool,
}

impl CloseUnlessDone<'_> {
    fn finish(mut self) {
        self.done = true;
    }
}

impl Drop for CloseUnlessDone<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.conn.close();
        }
    }
}
