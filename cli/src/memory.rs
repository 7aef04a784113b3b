//! Gives the heap's free memory back to the OS: fixed allocator thresholds, and a trim every
//! few seconds.
//!
//! glibc's malloc keeps what a burst freed (a flood of fresh identities, a morning's join
//! storm) in its arenas for reuse: 30 s of fresh identities left the master at 1.6 times its
//! memory before the flood, long after their sessions had closed (issue 18). Two things kept
//! it:
//!
//! * Free memory inside an arena. A periodic `malloc_trim` returns it, but only from the bins
//!   of every arena and the top of the main one: the free top of a thread's arena is
//!   returned only when a `free` finds it over the trim threshold.
//! * That threshold, raised by glibc itself. Freeing a block it had mapped on its own (at
//!   first anything from 128 KiB up) raises the mmap threshold to that block's size and the
//!   trim threshold to twice it. The session table the flood grew, 20 MB when it doubled,
//!   took them to 20 MB and 40 MB: from then on big tables were carved from the arenas and a
//!   runtime thread's arena kept up to 40 MB of free top that no trim returned (the master
//!   measured 1.08x to 1.52x its memory before the flood, depending on where the free memory
//!   fell). [`fix_thresholds`] sets both, which turns the raising off.
//!
//! Elsewhere (musl, other systems) nothing is done.

use std::time::Duration;

/// How often. A burst's state goes within seconds of its end (half-open handshakes and
/// enrollment sessions 10 s after their last datagram); a trim runs on the blocking pool, so
/// the runtime's threads never wait for it.
pub(crate) const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Blocks this big or bigger get a mapping of their own, unmapped when freed: a table a flood
/// grew goes back whole. glibc's starting value; it stays put instead of rising to the largest
/// block freed. Sending and receiving allocate far less (a datagram, a 64 KiB buffer); the
/// largest regular block, the 1 MiB buffer an inventory batch is decompressed into, now costs
/// a map and an unmap per batch (microseconds; only the pages written are touched).
pub(crate) const MMAP_THRESHOLD: usize = 128 * 1024;

/// Free memory an arena may keep at its top after a `free`; beyond it the rest goes back.
/// glibc's starting value, likewise fixed: with a handful of arenas, well under a megabyte.
pub(crate) const TRIM_THRESHOLD: usize = 128 * 1024;

/// Fixes glibc's mmap and trim thresholds at [`MMAP_THRESHOLD`] and [`TRIM_THRESHOLD`] (see
/// the module docs). Call before the runtime starts. Returns false if glibc refused a value.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // One of the crate's two unsafe blocks: calls into the C library.
pub(crate) fn fix_thresholds() -> bool {
    // The values are small constants: the casts cannot truncate.
    let (mmap, trim) = (MMAP_THRESHOLD as libc::c_int, TRIM_THRESHOLD as libc::c_int);
    // SAFETY: mallopt(3) takes two integers and no pointer; it takes the arena lock itself.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, mmap) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, trim) == 1
    }
}

/// Nothing to do without glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn fix_thresholds() -> bool {
    true
}

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

/// Returns the free memory at the top of the main arena, and the free whole pages inside
/// every arena, to the OS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // One of the crate's two unsafe blocks: calls into the C library.
fn trim() {
    // SAFETY: malloc_trim(3) takes no pointer and has no precondition; it is thread-safe
    // (it locks each arena while it walks it).
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Resident memory of this process, in bytes.
    fn rss() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap();
        pages * 4096
    }

    /// A block as big as a flood's table, touched so it is resident.
    fn touched(bytes: usize) -> Vec<u8> {
        let mut v = vec![0u8; bytes];
        for i in (0..bytes).step_by(4096) {
            v[i] = 1;
        }
        std::hint::black_box(v)
    }

    /// Set in the child process that runs the measurement alone.
    const ALONE: &str = "FLEETMESH_MEMORY_TEST_ALONE";

    /// With the thresholds fixed, a big block freed after another, bigger one was freed
    /// still goes back to the OS at once. Without them, glibc raised its thresholds to the
    /// first block's size and kept the second in the heap. RSS is the whole process's, and
    /// the other tests of this binary allocate in parallel: the measurement runs in a process
    /// of its own (this binary again, running only this test).
    #[test]
    fn a_big_block_goes_back_to_the_os_even_after_a_bigger_one_was_freed() {
        if std::env::var_os(ALONE).is_none() {
            let name =
                "memory::tests::a_big_block_goes_back_to_the_os_even_after_a_bigger_one_was_freed";
            let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
                .args([name, "--exact", "--test-threads=1"])
                .env(ALONE, "1")
                .output()
                .expect("run the test alone");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "alone: {text}{}", String::from_utf8_lossy(&out.stderr));
            assert!(text.contains("1 passed"), "the test did not run alone: {text}");
            return;
        }
        assert!(fix_thresholds());
        const MB: usize = 1 << 20;
        // Threads of their own, as the runtime's are; the first block would have raised the
        // thresholds to 24 MB (trim 48 MB).
        std::thread::spawn(|| drop(touched(24 * MB))).join().unwrap();
        let (before, during, after) = std::thread::spawn(|| {
            let before = rss();
            let block = touched(16 * MB);
            let during = rss();
            drop(block);
            (before, during, rss())
        })
        .join()
        .unwrap();
        assert!(during >= before + 15 * MB, "the block was resident: {before} -> {during}");
        assert!(after + 14 * MB <= during, "not given back: {during} -> {after}");
    }
}
