//! ResilientDlq: spooling to a local SQLite file while the primary is down,
//! merged reads, and draining back once it answers.

mod common;

use std::sync::Arc;

use common::*;
use relay_dlq::{
    DlqQuery, DlqState, DlqStore, FailureReason, MemoryDlq, PostgresConfig, PostgresDlq,
    ResilientDlq, SqliteDlq,
};

fn spool() -> Result<(tempfile::TempDir, Arc<dyn DlqStore>), TestError> {
    let dir = tempfile::tempdir()?;
    let store = SqliteDlq::open(dir.path().join("dlq-spool.sqlite"))?;
    Ok((dir, Arc::new(store)))
}

#[tokio::test]
async fn dead_postgres_primary_spools_everything() -> TestResult {
    let primary = PostgresDlq::connect_lazy(PostgresConfig::new(
        "postgres://postgres@127.0.0.1:1/test",
        2,
    ))?;
    let (_dir, fallback) = spool()?;
    let dlq = ResilientDlq::new(Arc::new(primary), fallback.clone());
    assert!(!dlq.status().degraded);

    let mut stored = Vec::new();
    for i in 0..3 {
        stored.push(
            dlq.add(
                full_letter(&format!("m-{i}"), "bob"),
                T0 + i,
                Some(T0 + 100),
            )
            .await?,
        );
    }
    let status = dlq.status();
    assert_eq!(status.backend, "postgres");
    assert!(status.degraded);
    assert_eq!(status.spooled, 3);
    assert_eq!(status.degraded_since, Some(T0));
    assert!(status.last_error.is_some_and(|e| e.contains("unavailable")));

    // Nothing lost: the spool has every letter, and reads see them.
    assert_eq!(fallback.count(&DlqQuery::all()).await?, 3);
    assert_eq!(dlq.count(&DlqQuery::all()).await?, 3);
    let listed = dlq
        .query(&DlqQuery {
            descending: false,
            ..DlqQuery::all()
        })
        .await?;
    assert_eq!(listed, stored);
    assert_eq!(dlq.get(&stored[1].id).await?, Some(stored[1].clone()));
    assert_eq!(dlq.due_for_retry(T0 + 100, 3, 10).await?.len(), 3);
    assert_eq!(dlq.stats().await?.total, 3);

    // Draining against a dead primary fails, keeps the spool and the state.
    assert!(dlq.drain(T0 + 200).await.is_err());
    assert!(dlq.status().degraded);
    assert_eq!(fallback.count(&DlqQuery::all()).await?, 3);
    dlq.close().await?;
    Ok(())
}

#[tokio::test]
async fn recovered_primary_receives_the_spool() -> TestResult {
    let inner: Arc<dyn DlqStore> = Arc::new(MemoryDlq::new());
    let primary = FlakyStore::new(inner.clone());
    let (_dir, fallback) = spool()?;
    let dlq = ResilientDlq::new(primary.clone(), fallback.clone());

    // Healthy: straight to the primary.
    let before = dlq
        .add(
            letter("m-0", "alice", "bob", FailureReason::TtlExpired),
            T0,
            None,
        )
        .await?;
    assert_eq!(inner.count(&DlqQuery::all()).await?, 1);
    assert!(!dlq.status().degraded);

    primary.set_failing(true);
    let mut spooled = Vec::new();
    for i in 1..=3 {
        spooled.push(
            dlq.add(
                letter(
                    &format!("m-{i}"),
                    "alice",
                    "bob",
                    FailureReason::ConnectionLost,
                ),
                T0 + i,
                Some(T0 + 50),
            )
            .await?,
        );
    }
    assert!(dlq.status().degraded);
    assert_eq!(dlq.status().spooled, 3);
    assert_eq!(inner.count(&DlqQuery::all()).await?, 1);
    // Updates reach spooled letters while the primary is down.
    assert!(
        dlq.set_state(&spooled[0].id, DlqState::Replaying, None, T0 + 60)
            .await?
    );
    assert_eq!(
        dlq.acknowledge(&[spooled[2].id.clone()], "ops", T0 + 61)
            .await?,
        1
    );
    // Reads answer from the spool alone while the primary is down.
    assert_eq!(dlq.pending_for_target("bob").await?.len(), 1);
    // Draining while still down changes nothing.
    assert!(dlq.drain(T0 + 70).await.is_err());
    assert_eq!(fallback.count(&DlqQuery::all()).await?, 3);

    primary.set_failing(false);
    // While degraded, writes keep going to the spool until a drain.
    dlq.add(
        letter("m-4", "alice", "bob", FailureReason::Unknown),
        T0 + 80,
        None,
    )
    .await?;
    assert_eq!(fallback.count(&DlqQuery::all()).await?, 4);
    // Reads merge both stores.
    assert_eq!(dlq.count(&DlqQuery::all()).await?, 5);
    assert_eq!(dlq.pending_for_target("bob").await?.len(), 3);

    assert_eq!(dlq.drain(T0 + 100).await?, 4);
    let status = dlq.status();
    assert!(!status.degraded);
    assert_eq!(status.spooled, 0);
    assert_eq!(status.last_error, None);
    assert_eq!(status.degraded_since, None);
    assert_eq!(fallback.count(&DlqQuery::all()).await?, 0);
    assert_eq!(inner.count(&DlqQuery::all()).await?, 5);
    // Moved letters keep their ids and everything done to them meanwhile.
    let replayed = inner.get(&spooled[0].id).await?.ok_or("m-1 missing")?;
    assert_eq!(replayed.state, DlqState::Replaying);
    assert_eq!(replayed.dlq_retry_count, 1);
    let acked = inner.get(&spooled[2].id).await?.ok_or("m-3 missing")?;
    assert!(acked.acknowledged);
    assert_eq!(inner.get(&before.id).await?, Some(before));

    // Idempotent, and writes go to the primary again.
    assert_eq!(dlq.drain(T0 + 110).await?, 0);
    dlq.add(
        letter("m-5", "alice", "bob", FailureReason::Unknown),
        T0 + 120,
        None,
    )
    .await?;
    assert_eq!(inner.count(&DlqQuery::all()).await?, 6);
    assert_eq!(fallback.count(&DlqQuery::all()).await?, 0);
    dlq.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_spool_left_by_an_earlier_run_is_unknown_until_drained() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("dlq-spool.sqlite");
    // An earlier run spooled two letters and stopped before PostgreSQL returned.
    let earlier = SqliteDlq::open(&path)?;
    let mut left = Vec::new();
    for i in 0..2 {
        left.push(
            earlier
                .add(
                    letter(&format!("m-{i}"), "alice", "bob", FailureReason::Unknown),
                    T0 + i,
                    None,
                )
                .await?,
        );
    }
    earlier.close().await?;

    // The next run finds the primary healthy: nothing fails, so nothing but
    // a drain discovers the old spool, and the status must not vouch for it.
    let inner: Arc<dyn DlqStore> = Arc::new(MemoryDlq::new());
    let fallback: Arc<dyn DlqStore> = Arc::new(SqliteDlq::open(&path)?);
    let dlq = ResilientDlq::new(FlakyStore::new(inner.clone()), fallback.clone());
    let status = dlq.status();
    assert!(
        !status.spool_checked,
        "a new wrapper has not seen its spool"
    );
    assert!(!status.degraded);
    assert_eq!(status.spooled, 0);
    assert_eq!(dlq.count(&DlqQuery::all()).await?, 2, "reads see the spool");

    assert_eq!(dlq.drain(T0 + 10).await?, 2);
    let status = dlq.status();
    assert!(status.spool_checked);
    assert!(!status.degraded);
    assert_eq!(status.spooled, 0);
    assert_eq!(fallback.count(&DlqQuery::all()).await?, 0);
    let moved = inner
        .query(&DlqQuery {
            descending: false,
            ..DlqQuery::all()
        })
        .await?;
    assert_eq!(moved, left, "moved with their ids");
    dlq.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_failed_drain_still_counts_the_spool() -> TestResult {
    let inner: Arc<dyn DlqStore> = Arc::new(MemoryDlq::new());
    let primary = FlakyStore::new(inner.clone());
    let (_dir, fallback) = spool()?;
    fallback
        .add(
            letter("m-0", "alice", "bob", FailureReason::Unknown),
            T0,
            None,
        )
        .await?;
    let dlq = ResilientDlq::new(primary.clone(), fallback.clone());
    primary.set_failing(true);
    assert!(dlq.drain(T0 + 1).await.is_err());
    let status = dlq.status();
    assert!(status.spool_checked);
    assert!(status.degraded);
    assert_eq!(status.spooled, 1);
    assert_eq!(fallback.count(&DlqQuery::all()).await?, 1);
    dlq.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_letter_in_both_stores_is_reported_once_and_merged_on_drain() -> TestResult {
    let inner: Arc<dyn DlqStore> = Arc::new(MemoryDlq::new());
    let primary = FlakyStore::new(inner.clone());
    let (_dir, fallback) = spool()?;
    let dlq = ResilientDlq::new(primary.clone(), fallback.clone());

    let original = dlq
        .add(
            letter("m-1", "alice", "bob", FailureReason::ConnectionLost),
            T0,
            Some(T0 + 1),
        )
        .await?;
    for _ in 0..2 {
        dlq.set_state(&original.id, DlqState::Replaying, None, T0 + 2)
            .await?;
    }
    dlq.set_state(&original.id, DlqState::Pending, Some(T0 + 5), T0 + 3)
        .await?;

    primary.set_failing(true);
    let again = dlq
        .add(
            letter("m-1", "alice", "bob", FailureReason::MaxRetriesExceeded),
            T0 + 10,
            None,
        )
        .await?;
    assert_ne!(again.id, original.id);
    primary.set_failing(false);

    // Reported once, as the newer (spooled) copy.
    let listed = dlq.query(&DlqQuery::all()).await?;
    assert_eq!(ids(&listed), std::slice::from_ref(&again.id));

    assert_eq!(dlq.drain(T0 + 20).await?, 1);
    let merged = inner.query(&DlqQuery::all()).await?;
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].id, original.id, "the primary's id is kept");
    assert_eq!(merged[0].reason, FailureReason::MaxRetriesExceeded);
    assert_eq!(merged[0].dlq_retry_count, 2, "retry history is not reset");
    assert_eq!(merged[0].dlq_ts, T0 + 10);
    dlq.close().await?;
    Ok(())
}

#[tokio::test]
async fn drain_into_a_real_postgres() -> TestResult {
    let Some(fixture) = postgres_fixture().await? else {
        return Ok(());
    };
    let outcome = async {
        let primary = FlakyStore::new(fixture.store.clone());
        let (_dir, fallback) = spool()?;
        let dlq = ResilientDlq::new(primary.clone(), fallback.clone());

        primary.set_failing(true);
        let mut spooled = Vec::new();
        for i in 0..5 {
            spooled.push(
                dlq.add(
                    full_letter(&format!("m-{i}"), "bob"),
                    T0 + i,
                    Some(T0 + 100),
                )
                .await?,
            );
        }
        assert!(dlq.status().degraded);
        assert_eq!(dlq.status().spooled, 5);
        assert_eq!(fixture.store.count(&DlqQuery::all()).await?, 0);

        primary.set_failing(false);
        assert_eq!(dlq.drain(T0 + 200).await?, 5);
        assert!(!dlq.status().degraded);
        assert_eq!(fallback.count(&DlqQuery::all()).await?, 0);
        let in_pg = fixture
            .store
            .query(&DlqQuery {
                descending: false,
                ..DlqQuery::all()
            })
            .await?;
        assert_eq!(in_pg, spooled, "every field survives the move");
        // Draining again is harmless.
        assert_eq!(dlq.drain(T0 + 300).await?, 0);
        assert_eq!(fixture.store.count(&DlqQuery::all()).await?, 5);
        fallback.close().await?;
        Ok::<_, TestError>(())
    }
    .await;
    fixture.finish().await?;
    outcome
}
