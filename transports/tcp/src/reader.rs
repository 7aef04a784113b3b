//! The task behind each connection: reads frames, hands datagrams to `recv_from`, and ends
//! the connection on EOF, error, bad frame, idleness or a local close.

use std::{io, net::SocketAddr, sync::Arc};

use tokio::io::AsyncReadExt;

use crate::{
    addr,
    conn::Conn,
    frame::{self, FrameError},
    net::{BoxRead, BoxWrite},
    transport::Shared,
    MAX_DATAGRAM_SIZE,
};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Why reading a frame stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The socket failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    /// The peer sent something that is not a frame.
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed mid-frame")]
    Truncated,
}

/// Bytes read but not yet decoded.
struct FrameReader {
    read: BoxRead,
    pending: Vec<u8>,
    chunk: Box<[u8]>,
}

impl FrameReader {
    fn new(read: BoxRead) -> Self {
        Self { read, pending: Vec::new(), chunk: vec![0; READ_CHUNK].into_boxed_slice() }
    }

    /// The next frame's payload, or `None` on a clean EOF between frames.
    ///
    /// Cancel safe: the only await is a socket `read`, which takes no bytes unless it
    /// completes, and everything read so far stays in `pending`.
    async fn next(&mut self, max: usize) -> Result<Option<Vec<u8>>, ReadError> {
        loop {
            if let Some((payload, used)) = frame::decode(&self.pending, max)? {
                let payload = payload.to_vec();
                self.pending.drain(..used);
                return Ok(Some(payload));
            }
            let n = self.read.read(&mut self.chunk).await?;
            if n == 0 {
                return if self.pending.is_empty() { Ok(None) } else { Err(ReadError::Truncated) };
            }
            self.pending.extend_from_slice(&self.chunk[..n]);
        }
    }
}

/// Serves a connection we accepted: waits for the hello, files the connection under the
/// dialer's listening address, then reads datagrams.
pub(crate) async fn run_accepted(
    shared: Arc<Shared>,
    read: BoxRead,
    write: BoxWrite,
    remote: SocketAddr,
) {
    let mut reader = FrameReader::new(read);
    let hello =
        tokio::time::timeout(shared.config().connect_timeout(), reader.next(frame::MAX_HELLO_LEN))
            .await;
    let port = match hello {
        Ok(Ok(Some(payload))) => match frame::parse_hello(&payload) {
            Ok(port) => port,
            Err(e) => {
                tracing::debug!(%remote, error = %e, "closing tcp connection: bad hello");
                return;
            }
        },
        Ok(Ok(None)) => {
            tracing::debug!(%remote, "tcp connection closed before its hello");
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "closing tcp connection: bad hello");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "closing tcp connection: no hello in time");
            return;
        }
    };
    // The IP is the one we observe, only the port is taken from the peer: it cannot file its
    // connection under another host's address, nor over another live connection (`register`).
    let remote = addr::canonical(remote);
    let peer = SocketAddr::new(remote.ip(), port);
    let Some(conn) = shared.register(peer, remote, write, Origin::Accepted) else {
        return;
    };
    let peer = conn.peer();
    tracing::debug!(%peer, %remote, "tcp connection accepted");
    serve(shared, conn, reader).await;
}

/// Serves a connection we dialed (the hello already sent).
pub(crate) async fn run_dialed(shared: Arc<Shared>, conn: Arc<Conn>, read: BoxRead) {
    serve(shared, conn, FrameReader::new(read)).await;
}

/// Who opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// We dialed it.
    Dialed,
    /// The peer dialed it.
    Accepted,
}

/// Why a connection's reader stopped.
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("closed by peer")]
    Peer,
    #[error("idle")]
    Idle,
    #[error("closed locally")]
    Local,
    #[error("transport dropped")]
    TransportGone,
    #[error(transparent)]
    Read(#[from] ReadError),
}

async fn serve(shared: Arc<Shared>, conn: Arc<Conn>, mut reader: FrameReader) {
    let peer = conn.peer();
    let idle_timeout = shared.config().idle_timeout();
    let end = loop {
        let deadline = conn.idle_deadline(idle_timeout);
        tokio::select! {
            next = reader.next(MAX_DATAGRAM_SIZE) => match next {
                Ok(Some(payload)) => {
                    conn.touch();
                    if !shared.deliver(peer, payload).await {
                        break End::TransportGone;
                    }
                }
                Ok(None) => break End::Peer,
                Err(e) => break End::Read(e),
            },
            () = tokio::time::sleep_until(deadline) => {
                // A send may have moved the deadline while we slept.
                if conn.idle_deadline(idle_timeout) <= tokio::time::Instant::now() {
                    break End::Idle;
                }
            }
            () = conn.closed() => break End::Local,
        }
    };
    tracing::debug!(%peer, id = conn.id(), reason = %end, "tcp connection closed");
    conn.close();
    shared.forget(&conn);
}
