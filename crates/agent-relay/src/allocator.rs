//! The binary's heap allocator, and how the daemon tunes it.
//!
//! The daemon allocates many small, short-lived buffers on several threads (frames, rows,
//! history entries); mimalloc serves those with thread-local free lists, where the system
//! allocator contends on shared arenas.
//!
//! Under load the daemon's heap swings by a hundred MiB or more: the storage queue fills while
//! SQLite catches up, then drains. mimalloc hands freed memory back to the kernel after
//! `purge_delay` (1 s by default), so each swing faulted the same memory in again, and a fresh
//! page costs the kernel a page clear — measured at 5–9 % of the daemon's CPU time in the
//! throughput benchmark, more with signed (larger) messages. [`tune_for_daemon`] keeps freed
//! memory for [`DAEMON_PURGE_DELAY_MS`] instead, and returns what has been freed once the daemon
//! has gone quiet (the router calls [`release_freed_memory`] a few seconds after the last
//! message, and each runtime worker collects its own heap the next time it parks; memory still
//! held by other threads' free lists waits for the purge delay).
//!
//! The daemon also runs without transparent huge pages. mimalloc advises its arenas for huge
//! pages but purges freed memory 4 KiB at a time; the kernel's khugepaged then collapses the
//! purged ranges back into whole 2 MiB pages, every ten seconds a few more, so an idle daemon's
//! RSS crept from 57 back up to 95 MiB in the minute after a burst. Without them it stays where
//! the idle release leaves it, and throughput is unchanged (docs/PERFORMANCE.md). Agents the
//! daemon spawns get huge pages back (the setting is inherited across `exec`).

use std::cell::Cell;
use std::os::raw::c_long;
use std::sync::atomic::{AtomicU64, Ordering};

use libmimalloc_sys::{mi_collect, mi_option_get, mi_option_set, mi_option_t};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`: the 16th entry of mimalloc v3's `mi_option_e` (include/mimalloc.h);
/// the bindings name no constant for it. The test below checks that this index reads the
/// purge delay's documented default.
const PURGE_DELAY_OPTION: mi_option_t = 15;

/// How long freed memory stays with the allocator before it is returned to the kernel while
/// the daemon is busy.
pub const DAEMON_PURGE_DELAY_MS: c_long = 10_000;

/// Sets the daemon's allocator policy. Call before any other thread starts: mimalloc's option
/// writes are not synchronised.
pub fn tune_for_daemon() {
    // SAFETY: mi_option_set stores one integer in mimalloc's option table; it takes no
    // pointers. Its only requirement, that no other thread reads the options concurrently,
    // holds because the caller runs before the daemon starts any thread.
    unsafe { mi_option_set(PURGE_DELAY_OPTION, DAEMON_PURGE_DELAY_MS) };
    relay_daemon::set_memory_releaser(release_freed_memory);
    let huge_pages = keep_off_huge_pages();
    tracing::debug!(
        purge_delay_ms = purge_delay_ms(),
        huge_pages,
        "allocator: freed memory is kept for reuse, and returned when the daemon goes idle"
    );
}

/// Turns transparent huge pages off for this process (see the module doc) and on again for the
/// agents it starts; says what the daemon runs with now.
#[cfg(target_os = "linux")]
fn keep_off_huge_pages() -> &'static str {
    use rustix::thread::{disable_transparent_huge_pages, transparent_huge_pages_are_disabled};
    if transparent_huge_pages_are_disabled().unwrap_or(false) {
        // Whoever started the daemon turned them off for the whole process tree: keep it so.
        return "off (inherited)";
    }
    match disable_transparent_huge_pages(true) {
        Ok(()) => {
            relay_wrapper::pty::allow_huge_pages_in_children();
            "off"
        }
        Err(_) => "unchanged (the kernel refused PR_SET_THP_DISABLE)",
    }
}

#[cfg(not(target_os = "linux"))]
fn keep_off_huge_pages() -> &'static str {
    "unchanged"
}

/// The purge delay in force, in milliseconds.
pub fn purge_delay_ms() -> c_long {
    // SAFETY: mi_option_get reads one integer from mimalloc's option table; no pointers.
    unsafe { mi_option_get(PURGE_DELAY_OPTION) }
}

/// Returns the freed memory waiting in mimalloc's arenas (and the calling thread's retired
/// pages) to the kernel now, whatever the purge delay.
pub fn release_freed_memory() {
    RELEASES.fetch_add(1, Ordering::Relaxed);
    collect_this_thread();
}

/// Counts [`release_freed_memory`] calls. mimalloc collects only the calling thread's heap, so
/// each runtime worker collects its own once per release, the next time it parks.
static RELEASES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The release this thread last collected for.
    static COLLECTED_FOR: Cell<u64> = const { Cell::new(0) };
}

/// For the daemon runtime's `on_thread_park`: returns this thread's freed memory if a release
/// was asked for since it last did; otherwise costs one atomic load.
pub fn collect_after_release() {
    if release_not_collected_yet() {
        collect_this_thread();
    }
}

/// Whether a release was asked for since this thread last collected; marks it collected.
fn release_not_collected_yet() -> bool {
    let release = RELEASES.load(Ordering::Relaxed);
    COLLECTED_FOR.with(|c| c.replace(release)) != release
}

fn collect_this_thread() {
    // SAFETY: mi_collect(true) frees the calling thread's retired pages and purges every arena
    // range scheduled for purging; it takes no pointers and may run on any thread at any time.
    unsafe { mi_collect(true) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mimalloc v3's default purge delay; no other option defaults to it.
    const MIMALLOC_DEFAULT_PURGE_DELAY_MS: c_long = 1_000;

    #[test]
    fn each_thread_collects_once_per_release() {
        release_freed_memory();
        let worker = std::thread::spawn(|| {
            let first = release_not_collected_yet();
            let again = release_not_collected_yet();
            RELEASES.fetch_add(1, Ordering::Relaxed);
            (first, again, release_not_collected_yet())
        });
        assert_eq!(worker.join().ok(), Some((true, false, true)));
    }

    #[test]
    fn the_option_index_is_the_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            eprintln!("MIMALLOC_PURGE_DELAY is set: the default cannot be checked");
            return;
        }
        assert_eq!(purge_delay_ms(), MIMALLOC_DEFAULT_PURGE_DELAY_MS);
    }
}
