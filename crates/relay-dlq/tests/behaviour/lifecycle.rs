//! Acknowledgement, state changes, retries, cleanup and close.

use super::queries::seed;
use crate::common::*;
use crate::Store;
use relay_dlq::{DlqError, DlqQuery, DlqState, FailureReason, DELIVERY_ACKNOWLEDGER};

pub async fn acknowledge_only_once(s: Store) -> TestResult {
    let seeded = seed(&s).await?;
    let [a, b, c, d, _] = &seeded[..] else {
        panic!("seed returned {} letters", seeded.len());
    };
    assert_eq!(
        s.acknowledge(&[a.id.clone(), b.id.clone()], "ops", T0 + 100)
            .await?,
        2
    );
    assert_eq!(
        s.acknowledge(&[b.id.clone(), c.id.clone()], "sre", T0 + 200)
            .await?,
        1
    );
    let b_now = s.get(&b.id).await?.ok_or("b vanished")?;
    assert!(b_now.acknowledged);
    assert_eq!(b_now.acknowledged_by.as_deref(), Some("ops"));
    assert_eq!(b_now.acknowledged_ts, Some(T0 + 100));
    let c_now = s.get(&c.id).await?.ok_or("c vanished")?;
    assert_eq!(c_now.acknowledged_by.as_deref(), Some("sre"));
    assert_eq!(c_now.acknowledged_ts, Some(T0 + 200));
    assert_eq!(
        s.acknowledge(&["dlq_missing".to_string()], "ops", T0)
            .await?,
        0
    );
    assert_eq!(s.acknowledge(&[], "ops", T0).await?, 0);
    assert_eq!(
        s.acknowledge(&[d.id.clone(), d.id.clone()], "ops", T0)
            .await?,
        1
    );
    let unacked = DlqQuery {
        acknowledged: Some(false),
        ..DlqQuery::default()
    };
    assert_eq!(s.count(&unacked).await?, 1);
    Ok(())
}

pub async fn set_state_transitions(s: Store) -> TestResult {
    let l = s
        .add(
            letter("m-1", "alice", "bob", FailureReason::ConnectionLost),
            T0,
            Some(T0 + 10),
        )
        .await?;

    assert!(
        s.set_state(&l.id, DlqState::Replaying, None, T0 + 10)
            .await?
    );
    let r = s.get(&l.id).await?.ok_or("missing")?;
    assert_eq!(r.state, DlqState::Replaying);
    assert_eq!(r.dlq_retry_count, 1);
    assert_eq!(r.last_attempt_ts, Some(T0 + 10));
    assert_eq!(r.next_retry_at, None);
    assert!(!r.acknowledged);

    assert!(
        s.set_state(&l.id, DlqState::Pending, Some(T0 + 1_000), T0 + 20)
            .await?
    );
    let p = s.get(&l.id).await?.ok_or("missing")?;
    assert_eq!(p.state, DlqState::Pending);
    assert_eq!(p.next_retry_at, Some(T0 + 1_000));
    assert_eq!(p.dlq_retry_count, 1);
    assert_eq!(p.last_attempt_ts, Some(T0 + 10));

    assert!(
        s.set_state(&l.id, DlqState::Replaying, None, T0 + 1_000)
            .await?
    );
    assert!(
        s.set_state(&l.id, DlqState::Delivered, None, T0 + 1_001)
            .await?
    );
    let d = s.get(&l.id).await?.ok_or("missing")?;
    assert_eq!(d.state, DlqState::Delivered);
    assert_eq!(d.dlq_retry_count, 2);
    assert_eq!(d.last_attempt_ts, Some(T0 + 1_000));
    assert!(d.acknowledged);
    assert_eq!(d.acknowledged_by.as_deref(), Some(DELIVERY_ACKNOWLEDGER));
    assert_eq!(d.acknowledged_ts, Some(T0 + 1_001));

    // Delivered keeps an earlier acknowledgement.
    let k = s
        .add(
            letter("m-2", "alice", "bob", FailureReason::ConnectionLost),
            T0,
            None,
        )
        .await?;
    s.acknowledge(std::slice::from_ref(&k.id), "ops", T0 + 5)
        .await?;
    assert!(
        s.set_state(&k.id, DlqState::Delivered, None, T0 + 6)
            .await?
    );
    let k = s.get(&k.id).await?.ok_or("missing")?;
    assert_eq!(k.acknowledged_by.as_deref(), Some("ops"));
    assert_eq!(k.acknowledged_ts, Some(T0 + 5));

    // Exhausted neither acknowledges nor counts a retry.
    let x = s
        .add(
            letter("m-3", "alice", "bob", FailureReason::ConnectionLost),
            T0,
            Some(T0 + 1),
        )
        .await?;
    assert!(
        s.set_state(&x.id, DlqState::Exhausted, None, T0 + 7)
            .await?
    );
    let x = s.get(&x.id).await?.ok_or("missing")?;
    assert_eq!(x.state, DlqState::Exhausted);
    assert!(!x.acknowledged);
    assert_eq!(x.dlq_retry_count, 0);
    assert_eq!(x.next_retry_at, None);

    assert!(
        !s.set_state("dlq_missing", DlqState::Pending, None, T0)
            .await?
    );
    Ok(())
}

pub async fn due_for_retry_selects_and_orders(s: Store) -> TestResult {
    let now = T0 + 1_000;
    let add = |mid: &'static str, dlq_ts: i64, next: Option<i64>| {
        let s = s.clone();
        async move {
            s.add(
                letter(mid, "alice", "bob", FailureReason::ConnectionLost),
                dlq_ts,
                next,
            )
            .await
        }
    };
    add("due-late", T0, Some(now - 10)).await?;
    add("due-now", T0, Some(now)).await?;
    add("due-early-b", T0 + 2, Some(now - 500)).await?;
    add("due-early-a", T0 + 1, Some(now - 500)).await?;
    add("future", T0, Some(now + 1)).await?;
    add("never", T0, None).await?;
    let acked = add("acked", T0, Some(now - 900)).await?;
    s.acknowledge(std::slice::from_ref(&acked.id), "ops", T0)
        .await?;
    let replaying = add("replaying", T0, Some(now - 900)).await?;
    s.set_state(&replaying.id, DlqState::Replaying, Some(now - 900), T0)
        .await?;
    let exhausted = add("exhausted", T0, Some(now - 900)).await?;
    s.set_state(&exhausted.id, DlqState::Exhausted, Some(now - 900), T0)
        .await?;
    // Two replays done: due with max_retries 3, not with 2.
    let retried = add("retried", T0, Some(now - 900)).await?;
    for _ in 0..2 {
        s.set_state(&retried.id, DlqState::Replaying, None, T0)
            .await?;
    }
    s.set_state(&retried.id, DlqState::Pending, Some(now - 700), T0)
        .await?;

    let due = s.due_for_retry(now, 3, 100).await?;
    assert_eq!(
        message_ids(&due),
        [
            "retried",
            "due-early-a",
            "due-early-b",
            "due-late",
            "due-now"
        ]
    );
    let due = s.due_for_retry(now, 2, 100).await?;
    assert_eq!(
        message_ids(&due),
        ["due-early-a", "due-early-b", "due-late", "due-now"]
    );
    assert_eq!(
        message_ids(&s.due_for_retry(now, 3, 2).await?),
        ["retried", "due-early-a"]
    );
    assert!(s.due_for_retry(now, 0, 100).await?.is_empty());
    assert!(s.due_for_retry(now, 3, 0).await?.is_empty());
    assert!(s.due_for_retry(T0, 3, 100).await?.is_empty());
    Ok(())
}

pub async fn pending_for_target_oldest_first(s: Store) -> TestResult {
    let add = |mid: &'static str, to: &'static str, dlq_ts: i64| {
        let s = s.clone();
        async move {
            s.add(
                letter(mid, "alice", to, FailureReason::ConnectionLost),
                dlq_ts,
                None,
            )
            .await
        }
    };
    add("b-3", "bob", T0 + 30).await?;
    add("b-1", "bob", T0 + 10).await?;
    add("c-1", "carol", T0).await?;
    let acked = add("b-acked", "bob", T0).await?;
    s.acknowledge(std::slice::from_ref(&acked.id), "ops", T0)
        .await?;
    let replaying = add("b-replaying", "bob", T0).await?;
    s.set_state(&replaying.id, DlqState::Replaying, None, T0)
        .await?;
    let exhausted = add("b-exhausted", "bob", T0).await?;
    s.set_state(&exhausted.id, DlqState::Exhausted, None, T0)
        .await?;
    add("b-2", "bob", T0 + 20).await?;

    assert_eq!(
        message_ids(&s.pending_for_target("bob").await?),
        ["b-1", "b-2", "b-3"]
    );
    assert_eq!(message_ids(&s.pending_for_target("carol").await?), ["c-1"]);
    assert!(s.pending_for_target("nobody").await?.is_empty());
    Ok(())
}

pub async fn cleanup_retention_keeps_unsettled(s: Store) -> TestResult {
    let day = 86_400_000;
    let now = T0 + 10 * day;
    let old = T0;
    let add = |mid: &'static str, dlq_ts: i64| {
        let s = s.clone();
        async move {
            s.add(
                letter(mid, "alice", "bob", FailureReason::ConnectionLost),
                dlq_ts,
                None,
            )
            .await
        }
    };
    add("old-pending", old).await?;
    let replaying = add("old-replaying", old).await?;
    s.set_state(&replaying.id, DlqState::Replaying, None, old)
        .await?;
    let acked = add("old-acked", old).await?;
    s.acknowledge(std::slice::from_ref(&acked.id), "ops", old)
        .await?;
    let delivered = add("old-delivered", old).await?;
    s.set_state(&delivered.id, DlqState::Delivered, None, old)
        .await?;
    let exhausted = add("old-exhausted", old).await?;
    s.set_state(&exhausted.id, DlqState::Exhausted, None, old)
        .await?;
    let fresh = add("fresh-acked", now - day).await?;
    s.acknowledge(std::slice::from_ref(&fresh.id), "ops", now)
        .await?;

    // No limits: nothing happens.
    assert_eq!(s.cleanup(now, None, None).await?.total(), 0);

    let report = s.cleanup(now, Some(2 * day), None).await?;
    assert_eq!(report.expired, 3);
    assert_eq!(report.evicted_acknowledged, 0);
    assert_eq!(report.evicted_unacknowledged, 0);
    let left = s
        .query(&DlqQuery {
            descending: false,
            ..DlqQuery::all()
        })
        .await?;
    let mut left = message_ids(&left);
    left.sort();
    assert_eq!(left, ["fresh-acked", "old-pending", "old-replaying"]);
    // Idempotent.
    assert_eq!(s.cleanup(now, Some(2 * day), None).await?.total(), 0);
    Ok(())
}

pub async fn cleanup_overflow_evicts_settled_first(s: Store) -> TestResult {
    let add = |mid: &'static str, dlq_ts: i64| {
        let s = s.clone();
        async move {
            s.add(
                letter(mid, "alice", "bob", FailureReason::ConnectionLost),
                dlq_ts,
                None,
            )
            .await
        }
    };
    add("u-1", T0 + 1).await?;
    let a2 = add("a-2", T0 + 2).await?;
    add("u-3", T0 + 3).await?;
    let a4 = add("a-4", T0 + 4).await?;
    add("u-5", T0 + 5).await?;
    let x6 = add("x-6", T0 + 6).await?;
    add("u-7", T0 + 7).await?;
    s.acknowledge(&[a2.id.clone(), a4.id.clone()], "ops", T0 + 10)
        .await?;
    s.set_state(&x6.id, DlqState::Exhausted, None, T0 + 10)
        .await?;

    // Within the limit: nothing to do.
    assert_eq!(s.cleanup(T0 + 20, None, Some(7)).await?.total(), 0);

    // 7 letters, room for 6: the oldest settled one goes.
    let report = s.cleanup(T0 + 20, None, Some(6)).await?;
    assert_eq!(report.evicted_acknowledged, 1);
    assert_eq!(report.evicted_unacknowledged, 0);
    assert_eq!(s.get(&a2.id).await?, None);

    // Room for 2: both remaining settled letters, then the 2 oldest unsettled.
    let report = s.cleanup(T0 + 20, Some(1_000_000), Some(2)).await?;
    assert_eq!(report.expired, 0);
    assert_eq!(report.evicted_acknowledged, 2);
    assert_eq!(report.evicted_unacknowledged, 2);
    let mut left = message_ids(&s.query(&DlqQuery::all()).await?);
    left.sort();
    assert_eq!(left, ["u-5", "u-7"]);

    assert_eq!(
        s.cleanup(T0 + 20, None, Some(0))
            .await?
            .evicted_unacknowledged,
        2
    );
    assert_eq!(s.count(&DlqQuery::all()).await?, 0);
    Ok(())
}

pub async fn closed_store_refuses_calls(s: Store) -> TestResult {
    s.add(
        letter("m-1", "alice", "bob", FailureReason::Unknown),
        T0,
        None,
    )
    .await?;
    s.close().await?;
    s.close().await?;
    match s
        .add(
            letter("m-2", "alice", "bob", FailureReason::Unknown),
            T0,
            None,
        )
        .await
    {
        Err(DlqError::Closed) => {}
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(matches!(
        s.count(&DlqQuery::all()).await,
        Err(DlqError::Closed)
    ));
    Ok(())
}
