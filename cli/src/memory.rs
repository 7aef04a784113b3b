//! Gives the heap's free memory back to the OS every few seconds.
//!
//! glibc's malloc keeps what a burst freed (a flood of fresh identities, a morning's join
//! storm) in its arenas for reuse: 30 s of fresh identities left the master at 1.6 times its
//! memory before the flood, long after their sessions had closed, and one `malloc_trim` brought
//! it back to 1.02 times (issue 18). Elsewhere (musl, other systems) nothing is started.

use std::time::Duration;

/// How often. A burst's state goes within seconds of its end (half-open handshakes and
/// enrollment sessions 10 s after their last datagram); a trim runs on the blocking pool, so
/// the runtime's threads never wait for it.
pub(crate) const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Starts the task that trims the heap every [`TRIM_EVERY`], on the current tokio runtime. It
/// ends with the runtime.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn spawn_trimmer() {
    tokio::spawn(async {
        let mut every = tokio::time::interval(TRIM_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await; // The first tick is immediate; nothing has been freed yet.
        loop {
            every.tick().await;
            // Off the runtime's threads: the trim takes every arena's lock in turn.
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    });
}

/// Nothing to do without glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn spawn_trimmer() {}

/// Returns the free memory at the top of every glibc arena, and the free whole pages inside
/// them, to the OS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // The crate's only unsafe: one call into the C library.
fn trim() {
    // SAFETY: malloc_trim(3) takes no pointer and has no precondition; it is thread-safe
    // (it locks each arena while it walks it).
    unsafe {
        libc::malloc_trim(0);
    }
}
