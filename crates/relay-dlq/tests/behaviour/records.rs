//! Storing and finding letters: add, upsert, import, get.

use crate::common::*;
use crate::Store;
use relay_dlq::{DeadLetter, DlqError, DlqQuery, DlqState, FailureReason};

pub async fn add_round_trips_every_field(s: Store) -> TestResult {
    let input = full_letter("m-full", "bob");
    let stored = s.add(input.clone(), T0, Some(T0 + 500)).await?;
    assert!(stored.id.starts_with("dlq_"), "{}", stored.id);
    assert_eq!(stored.id.len(), 28);
    assert!(stored.id[4..].chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(stored.to_new(), input);
    assert_eq!(stored.dlq_ts, T0);
    assert_eq!(stored.next_retry_at, Some(T0 + 500));
    assert_eq!(stored.state, DlqState::Pending);
    assert_eq!(stored.dlq_retry_count, 0);
    assert_eq!(stored.last_attempt_ts, None);
    assert!(!stored.acknowledged);
    assert_eq!(stored.acknowledged_ts, None);
    assert_eq!(stored.acknowledged_by, None);
    assert_eq!(s.get(&stored.id).await?, Some(stored.clone()));

    // Every optional field empty, and a JSON `null` that must stay `Some(null)`.
    let mut minimal = letter("m-min", "carol", "dave", FailureReason::Unknown);
    minimal.payload_meta = Some(serde_json::Value::Null);
    minimal.body = String::new();
    let stored_min = s.add(minimal.clone(), T0 + 1, None).await?;
    assert_eq!(stored_min.to_new(), minimal);
    assert_eq!(s.get(&stored_min.id).await?, Some(stored_min.clone()));

    let all = s.query(&DlqQuery::all()).await?;
    assert_eq!(all, vec![stored_min, stored]);
    Ok(())
}

pub async fn add_upserts_on_message_and_target(s: Store) -> TestResult {
    let first = s
        .add(
            letter("m-1", "alice", "bob", FailureReason::ConnectionLost),
            T0,
            Some(T0 + 10),
        )
        .await?;
    assert_eq!(
        s.acknowledge(std::slice::from_ref(&first.id), "ops", T0 + 1)
            .await?,
        1
    );
    assert!(
        s.set_state(&first.id, DlqState::Replaying, None, T0 + 2)
            .await?
    );

    let mut again = letter("m-1", "alice", "bob", FailureReason::MaxRetriesExceeded);
    again.error_message = Some("gave up".into());
    again.attempt_count = 7;
    again.body = "a different body is ignored".into();
    let second = s.add(again, T0 + 100, Some(T0 + 200)).await?;
    assert_eq!(second.id, first.id);
    assert_eq!(second.reason, FailureReason::MaxRetriesExceeded);
    assert_eq!(second.error_message.as_deref(), Some("gave up"));
    assert_eq!(second.attempt_count, 7);
    assert_eq!(second.dlq_ts, T0 + 100);
    assert_eq!(second.next_retry_at, Some(T0 + 200));
    assert_eq!(second.state, DlqState::Pending);
    assert!(!second.acknowledged);
    assert_eq!(second.acknowledged_ts, None);
    assert_eq!(second.acknowledged_by, None);
    // Retry history and the message itself are kept.
    assert_eq!(second.dlq_retry_count, 1);
    assert_eq!(second.last_attempt_ts, Some(T0 + 2));
    assert_eq!(second.body, first.body);
    assert_eq!(s.get(&first.id).await?, Some(second.clone()));
    assert_eq!(s.count(&DlqQuery::all()).await?, 1);

    // Same message, another target: a separate letter.
    let other = s
        .add(
            letter("m-1", "alice", "carol", FailureReason::ConnectionLost),
            T0,
            None,
        )
        .await?;
    assert_ne!(other.id, first.id);
    assert_eq!(s.count(&DlqQuery::all()).await?, 2);
    Ok(())
}

pub async fn import_keeps_the_record(s: Store) -> TestResult {
    let mut rec = DeadLetter::from_new(full_letter("m-imp", "bob"), T0, Some(T0 + 9));
    rec.id = "dlq_000000000000000000000abc".into();
    rec.state = DlqState::Replaying;
    rec.dlq_retry_count = 3;
    rec.last_attempt_ts = Some(T0 + 5);
    rec.acknowledged = true;
    rec.acknowledged_ts = Some(T0 + 6);
    rec.acknowledged_by = Some("ops".into());
    assert_eq!(s.import(rec.clone()).await?, rec);
    assert_eq!(s.get(&rec.id).await?, Some(rec.clone()));
    // Importing the same record again changes nothing.
    assert_eq!(s.import(rec.clone()).await?, rec);

    // Another copy of the same (message, target) keeps the stored id and the
    // larger retry count, and takes everything else from the copy.
    let mut copy = rec.clone();
    copy.id = "dlq_ffffffffffffffffffffffff".into();
    copy.state = DlqState::Pending;
    copy.dlq_retry_count = 1;
    copy.last_attempt_ts = None;
    copy.acknowledged = false;
    copy.acknowledged_ts = None;
    copy.acknowledged_by = None;
    copy.reason = FailureReason::RateLimited;
    copy.dlq_ts = T0 + 50;
    let merged = s.import(copy.clone()).await?;
    let mut expected = copy;
    expected.id = rec.id.clone();
    expected.dlq_retry_count = 3;
    expected.last_attempt_ts = Some(T0 + 5);
    assert_eq!(merged, expected);
    assert_eq!(s.count(&DlqQuery::all()).await?, 1);
    assert_eq!(s.get("dlq_ffffffffffffffffffffffff").await?, None);
    Ok(())
}

pub async fn get_by_exact_id_and_prefix(s: Store) -> TestResult {
    let a = s
        .import(record("dlq_aaaa00000000000000000001", "m-a", "bob", T0))
        .await?;
    let b = s
        .import(record("dlq_aaaa00000000000000000002", "m-b", "bob", T0))
        .await?;
    let c = s
        .import(record("dlq_bbbb00000000000000000001", "m-c", "bob", T0))
        .await?;
    // A prefix that is also a complete id wins as an exact match.
    let short = s.import(record("dlq_cc", "m-d", "bob", T0)).await?;
    let longer = s.import(record("dlq_cc1", "m-e", "bob", T0)).await?;

    assert_eq!(s.get(&a.id).await?, Some(a.clone()));
    assert_eq!(s.get(&b.id).await?, Some(b.clone()));
    assert_eq!(s.get("dlq_b").await?, Some(c.clone()));
    assert_eq!(s.get("dlq_aaaa00000000000000000002").await?, Some(b));
    assert_eq!(s.get("dlq_cc").await?, Some(short));
    assert_eq!(s.get("dlq_cc1").await?, Some(longer));
    match s.get("dlq_aaaa").await {
        Err(DlqError::Ambiguous { prefix, count }) => {
            assert_eq!(prefix, "dlq_aaaa");
            assert_eq!(count, 2);
        }
        other => panic!("expected Ambiguous, got {other:?}"),
    }
    match s.get("dlq_").await {
        Err(DlqError::Ambiguous { count, .. }) => assert_eq!(count, 5),
        other => panic!("expected Ambiguous, got {other:?}"),
    }
    assert_eq!(s.get("dlq_z").await?, None);
    assert_eq!(s.get("").await?, None);
    // Pattern characters are matched literally.
    assert_eq!(s.get("dlq_%").await?, None);
    assert_eq!(s.get("dlq__").await?, None);
    assert_eq!(s.get("dlq_*").await?, None);
    Ok(())
}
