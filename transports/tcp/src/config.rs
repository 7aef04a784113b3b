//! [`TcpConfig`]: timeouts and queue sizes of a [`TcpTransport`](crate::TcpTransport).

use std::time::Duration;

/// Settings for a [`TcpTransport`](crate::TcpTransport). [`Default`] gives sensible values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    idle_timeout: Duration,
    connect_timeout: Duration,
    write_timeout: Duration,
    recv_queue: usize,
    max_accepted: usize,
    max_accepted_per_ip: usize,
}

/// Default for [`TcpConfig::with_accept_limits`]: connections accepted and open at once.
pub const DEFAULT_MAX_ACCEPTED: usize = 4096;
/// Default for [`TcpConfig::with_accept_limits`]: of those, from one IP (hosts behind one NAT
/// share it, but only LSNs and nodes that lost UDP fall back to TCP).
pub const DEFAULT_MAX_ACCEPTED_PER_IP: usize = 64;

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            recv_queue: 1024,
            max_accepted: DEFAULT_MAX_ACCEPTED,
            max_accepted_per_ip: DEFAULT_MAX_ACCEPTED_PER_IP,
        }
    }
}

impl TcpConfig {
    /// Accepts at most `total` connections open at once, and `per_ip` from one IP address
    /// (defaults [`DEFAULT_MAX_ACCEPTED`] and [`DEFAULT_MAX_ACCEPTED_PER_IP`]); a connection
    /// over a limit is closed at once, before its hello is read, and counted in
    /// [`TcpStats::refused`](crate::TcpStats::refused). Dialed connections do not count.
    pub fn with_accept_limits(mut self, total: usize, per_ip: usize) -> Self {
        self.max_accepted = total;
        self.max_accepted_per_ip = per_ip;
        self
    }

    /// See [`with_accept_limits`](Self::with_accept_limits).
    pub fn max_accepted(&self) -> (usize, usize) {
        (self.max_accepted, self.max_accepted_per_ip)
    }

    /// Closes a connection after this long without a frame in either direction (default 60 s).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let config = fleetmesh_tcp::TcpConfig::default().with_idle_timeout(Duration::from_secs(5));
    /// assert_eq!(config.idle_timeout(), Duration::from_secs(5));
    /// ```
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Gives up dialing after this long, counting the hello (default 10 s). An accepted
    /// connection must deliver its hello within the same time.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let config = fleetmesh_tcp::TcpConfig::default().with_connect_timeout(Duration::from_secs(2));
    /// assert_eq!(config.connect_timeout(), Duration::from_secs(2));
    /// ```
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Fails a send whose frame the peer has not taken within this long (default 10 s), and
    /// closes that connection: a peer that stops reading must not stall the sender forever.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let config = fleetmesh_tcp::TcpConfig::default().with_write_timeout(Duration::from_secs(1));
    /// assert_eq!(config.write_timeout(), Duration::from_secs(1));
    /// ```
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// How many received datagrams wait for `recv_from` (default 1024, minimum 1). When the
    /// queue is full, connections stop reading and TCP flow control slows the senders.
    ///
    /// ```
    /// let config = fleetmesh_tcp::TcpConfig::default().with_recv_queue(64);
    /// assert_eq!(config.recv_queue(), 64);
    /// ```
    pub fn with_recv_queue(mut self, datagrams: usize) -> Self {
        self.recv_queue = datagrams.max(1);
        self
    }

    /// See [`with_idle_timeout`](Self::with_idle_timeout).
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// See [`with_connect_timeout`](Self::with_connect_timeout).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// See [`with_write_timeout`](Self::with_write_timeout).
    pub fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    /// See [`with_recv_queue`](Self::with_recv_queue).
    pub fn recv_queue(&self) -> usize {
        self.recv_queue
    }
}
