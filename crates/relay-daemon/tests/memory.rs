//! Idle memory release: the daemon hands freed heap back through the releaser its program set
//! (the binary's allocator), once traffic has been quiet for a few seconds.
//!
//! One test in its own binary: the releaser is process-wide, so no other daemon may share it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;

static RELEASES: AtomicUsize = AtomicUsize::new(0);

fn count_release() {
    RELEASES.fetch_add(1, Ordering::SeqCst);
}

/// Waits until the releaser has run more than `seen` times; how long it took.
async fn release_after(seen: usize, deadline: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if RELEASES.load(Ordering::SeqCst) > seen {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_programs_releaser_runs_when_traffic_goes_quiet() {
    relay_daemon::set_memory_releaser(count_release);
    let d = TestDaemon::start(fast_config()).await;

    // A daemon that has done nothing yet has nothing to give back.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        RELEASES.load(Ordering::SeqCst),
        0,
        "released with no traffic at all"
    );

    // Traffic, then quiet: released, a few seconds after the last message.
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    for i in 0..20 {
        alice.send_to("Bob", &format!("burst {i}")).await;
        let m = bob.expect("DELIVER").await;
        bob.ack(&m).await;
    }
    let waited = release_after(0, Duration::from_secs(10))
        .await
        .expect("the releaser did not run after the traffic stopped");
    assert!(
        waited >= Duration::from_secs(1),
        "released {waited:?} after the last message: it must wait for quiet"
    );

    // Once per quiet spell.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        RELEASES.load(Ordering::SeqCst),
        1,
        "released again while quiet"
    );
}
