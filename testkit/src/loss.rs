//! [`Loss`]: independent per-datagram loss on a host's UDP sends, drawn from a seeded RNG.
//!
//! turmoil's own loss setting (its *fail rate*, [`OverlayBuilder::burst_loss`]) is a different
//! model: a failing link drops the datagram being sent *and everything in flight on the link*
//! in both directions, so losses come in bursts. [`Loss`] drops each datagram on its own with
//! probability `p`, as a lossy radio or an overloaded router would.
//!
//! [`OverlayBuilder::burst_loss`]: crate::OverlayBuilder::burst_loss

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use async_trait::async_trait;
use fleetmesh::{Path, Transport, TransportError};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// The probability that a datagram is dropped, shared by every host of a fleet (clones share
/// it), changeable while the simulation runs. Default 0 (nothing dropped).
#[derive(Debug, Clone, Default)]
pub struct Loss {
    /// The probability's `f64` bits.
    bits: Arc<AtomicU64>,
}

impl Loss {
    /// Sets the probability that each datagram sent from now on is dropped, clamped to
    /// `0.0..=1.0` (a NaN counts as 0).
    pub fn set(&self, p: f64) {
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        self.bits.store(p.to_bits(), Ordering::SeqCst);
    }

    /// The probability now.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::SeqCst))
    }

    /// `transport`, whose sends are each dropped with this probability, drawn from an RNG
    /// seeded with `seed` (the same seed drops the same datagrams of the same run).
    pub fn wrap<T: Transport>(&self, transport: T, seed: [u8; 32]) -> Lossy<T> {
        Lossy {
            inner: transport,
            loss: self.clone(),
            rng: Mutex::new(ChaCha20Rng::from_seed(seed)),
        }
    }
}

/// A [`Transport`] that drops each datagram it sends with the probability of its [`Loss`].
/// Receiving is untouched, so each datagram meets the loss exactly once on its way.
#[derive(Debug)]
pub struct Lossy<T> {
    inner: T,
    loss: Loss,
    rng: Mutex<ChaCha20Rng>,
}

impl<T> Lossy<T> {
    /// Whether the next datagram is dropped. Draws from the RNG only while the loss is on, so
    /// a run without loss makes no draws.
    fn drops(&self) -> bool {
        let p = self.loss.get();
        if p <= 0.0 {
            return false;
        }
        // Each draw is one RNG step; a poisoned lock still holds a usable RNG.
        let draw = self.rng.lock().unwrap_or_else(|e| e.into_inner()).next_u64();
        // The top 53 bits as a uniform number in [0, 1).
        ((draw >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

#[async_trait]
impl<T: Transport> Transport for Lossy<T> {
    async fn send_to(&self, dst: SocketAddr, datagram: &[u8]) -> Result<(), TransportError> {
        if self.drops() {
            // Lost on the way: the sender cannot tell.
            return Ok(());
        }
        self.inner.send_to(dst, datagram).await
    }

    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), TransportError> {
        self.inner.recv_from(buf).await
    }

    fn local_addrs(&self) -> Vec<SocketAddr> {
        self.inner.local_addrs()
    }

    fn max_datagram_size(&self) -> usize {
        self.inner.max_datagram_size()
    }

    async fn send_on(
        &self,
        path: Path,
        dst: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), TransportError> {
        if self.drops() {
            return Ok(());
        }
        self.inner.send_on(path, dst, datagram).await
    }

    async fn recv_on(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr, Path), TransportError> {
        self.inner.recv_on(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Null;

    #[async_trait]
    impl Transport for Null {
        async fn send_to(&self, _: SocketAddr, _: &[u8]) -> Result<(), TransportError> {
            Ok(())
        }
        async fn recv_from(&self, _: &mut [u8]) -> Result<(usize, SocketAddr), TransportError> {
            std::future::pending().await
        }
        fn local_addrs(&self) -> Vec<SocketAddr> {
            Vec::new()
        }
        fn max_datagram_size(&self) -> usize {
            1200
        }
    }

    fn dropped(loss: &Loss, seed: u8, n: usize) -> Vec<bool> {
        let lossy = loss.wrap(Null, [seed; 32]);
        (0..n).map(|_| lossy.drops()).collect()
    }

    #[test]
    fn drops_each_datagram_independently_at_the_set_rate_and_repeats_with_the_seed() {
        let loss = Loss::default();
        assert!(dropped(&loss, 1, 1000).iter().all(|d| !d));
        loss.set(0.2);
        let run = dropped(&loss, 1, 10_000);
        let rate = run.iter().filter(|d| **d).count() as f64 / run.len() as f64;
        assert!((0.18..0.22).contains(&rate), "{rate}");
        // Independent: a drop makes the next no likelier (no bursts).
        let after_drop: Vec<bool> = run.windows(2).filter(|w| w[0]).map(|w| w[1]).collect();
        let rate_after = after_drop.iter().filter(|d| **d).count() as f64 / after_drop.len() as f64;
        assert!((0.15..0.25).contains(&rate_after), "{rate_after}");
        assert_eq!(run, dropped(&loss, 1, 10_000));
        assert_ne!(run, dropped(&loss, 2, 10_000));
        loss.set(7.0);
        assert_eq!(loss.get(), 1.0);
        assert!(dropped(&loss, 1, 100).iter().all(|d| *d));
    }
}
