//! The streams [`TcpTransport`](crate::TcpTransport) runs over: tokio's, and turmoil's
//! simulated ones with the `turmoil` feature.
//!
//! Everything above this module sees boxed read and write halves, so the connection logic is
//! one piece of code for both.

use std::{
    io,
    net::{IpAddr, SocketAddr},
};

use tokio::io::{AsyncRead, AsyncWrite};

/// The reading half of a connection.
pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a connection; dropping it shuts down our direction (sends FIN).
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Which network a transport lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// Real sockets.
    Tokio,
    /// A turmoil simulation.
    #[cfg(feature = "turmoil")]
    Turmoil,
}

impl Backend {
    /// Whether an IPv6 wildcard listener also accepts IPv4. Tokio leaves `IPV6_V6ONLY` to the
    /// OS default (off on Linux); turmoil routes by literal IP and has no mapped addresses.
    pub(crate) fn dual_stack(self) -> bool {
        match self {
            Self::Tokio => true,
            #[cfg(feature = "turmoil")]
            Self::Turmoil => false,
        }
    }

    /// Opens a connection to `dst`, from `source` if given (ignored on turmoil, which always
    /// uses the host's address).
    pub(crate) async fn connect(
        self,
        dst: SocketAddr,
        source: Option<IpAddr>,
    ) -> io::Result<(BoxRead, BoxWrite)> {
        match self {
            Self::Tokio => {
                let stream = match source {
                    Some(ip) => {
                        let socket = if ip.is_ipv4() {
                            tokio::net::TcpSocket::new_v4()?
                        } else {
                            tokio::net::TcpSocket::new_v6()?
                        };
                        socket.bind(SocketAddr::new(ip, 0))?;
                        socket.connect(dst).await?
                    }
                    None => tokio::net::TcpStream::connect(dst).await?,
                };
                // Frames are small and latency matters more than packet count.
                stream.set_nodelay(true)?;
                let (read, write) = stream.into_split();
                Ok((Box::new(read), Box::new(write)))
            }
            #[cfg(feature = "turmoil")]
            Self::Turmoil => {
                let (read, write) = turmoil::net::TcpStream::connect(dst).await?.into_split();
                Ok((Box::new(read), Box::new(write)))
            }
        }
    }
}

/// A listening socket.
pub(crate) enum Listener {
    Tokio(tokio::net::TcpListener),
    #[cfg(feature = "turmoil")]
    Turmoil(turmoil::net::TcpListener),
}

impl Listener {
    pub(crate) async fn bind(backend: Backend, addr: SocketAddr) -> io::Result<Self> {
        match backend {
            Backend::Tokio => Ok(Self::Tokio(tokio::net::TcpListener::bind(addr).await?)),
            #[cfg(feature = "turmoil")]
            Backend::Turmoil => Ok(Self::Turmoil(turmoil::net::TcpListener::bind(addr).await?)),
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Tokio(l) => l.local_addr(),
            #[cfg(feature = "turmoil")]
            Self::Turmoil(l) => l.local_addr(),
        }
    }

    /// The next incoming connection and the remote address it came from.
    pub(crate) async fn accept(&self) -> io::Result<(BoxRead, BoxWrite, SocketAddr)> {
        match self {
            Self::Tokio(l) => {
                let (stream, remote) = l.accept().await?;
                if let Err(e) = stream.set_nodelay(true) {
                    // Only a latency optimisation: the connection works without it.
                    tracing::debug!(%remote, error = %e, "cannot set TCP_NODELAY");
                }
                let (read, write) = stream.into_split();
                Ok((Box::new(read), Box::new(write), remote))
            }
            #[cfg(feature = "turmoil")]
            Self::Turmoil(l) => {
                let (stream, remote) = l.accept().await?;
                let (read, write) = stream.into_split();
                Ok((Box::new(read), Box::new(write), remote))
            }
        }
    }
}
