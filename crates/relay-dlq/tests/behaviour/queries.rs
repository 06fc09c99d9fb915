//! Listing, counting, purging and statistics.

use crate::common::*;
use crate::Store;
use relay_dlq::{
    DeadLetter, DlqError, DlqOrder, DlqQuery, DlqState, FailureReason, DEFAULT_QUERY_LIMIT,
};

/// Letters used by the filter and order scenarios:
/// (message id, from, to, reason, dlq_ts).
pub async fn seed(s: &Store) -> Result<Vec<DeadLetter>, DlqError> {
    use FailureReason::*;
    let rows = [
        ("m-0", "alice", "bob", TtlExpired, T0),
        ("m-1", "alice", "carol", ConnectionLost, T0 + 10),
        ("m-2", "dave", "bob", TtlExpired, T0 + 20),
        ("m-3", "dave", "erin", TargetNotFound, T0 + 30),
        ("m-4", "alice", "bob", RateLimited, T0 + 40),
    ];
    let mut out = Vec::new();
    for (mid, from, to, reason, ts) in rows {
        out.push(s.add(letter(mid, from, to, reason), ts, None).await?);
    }
    Ok(out)
}

pub async fn query_filters(s: Store) -> TestResult {
    let seeded = seed(&s).await?;
    s.acknowledge(
        &[seeded[1].id.clone(), seeded[3].id.clone()],
        "ops",
        T0 + 100,
    )
    .await?;
    s.set_state(&seeded[2].id, DlqState::Exhausted, None, T0 + 100)
        .await?;

    let check = |q: DlqQuery, expected: &'static [&'static str]| {
        let s = s.clone();
        async move {
            let q = DlqQuery {
                descending: false,
                ..q
            };
            let got = message_ids(&s.query(&q).await?);
            assert_eq!(got, expected, "query {q:?}");
            assert_eq!(s.count(&q).await?, expected.len() as u64, "count {q:?}");
            Ok::<_, DlqError>(())
        }
    };
    check(DlqQuery::all(), &["m-0", "m-1", "m-2", "m-3", "m-4"]).await?;
    check(DlqQuery::for_target("bob"), &["m-0", "m-2", "m-4"]).await?;
    check(DlqQuery::for_target("nobody"), &[]).await?;
    check(
        DlqQuery {
            from: Some("dave".into()),
            ..DlqQuery::default()
        },
        &["m-2", "m-3"],
    )
    .await?;
    check(
        DlqQuery {
            reason: Some(FailureReason::TtlExpired),
            ..DlqQuery::default()
        },
        &["m-0", "m-2"],
    )
    .await?;
    check(
        DlqQuery {
            state: Some(DlqState::Exhausted),
            ..DlqQuery::default()
        },
        &["m-2"],
    )
    .await?;
    check(
        DlqQuery {
            state: Some(DlqState::Pending),
            ..DlqQuery::default()
        },
        &["m-0", "m-1", "m-3", "m-4"],
    )
    .await?;
    check(
        DlqQuery {
            acknowledged: Some(true),
            ..DlqQuery::default()
        },
        &["m-1", "m-3"],
    )
    .await?;
    check(
        DlqQuery {
            acknowledged: Some(false),
            ..DlqQuery::default()
        },
        &["m-0", "m-2", "m-4"],
    )
    .await?;
    // since is inclusive, until exclusive.
    check(
        DlqQuery {
            since_ts: Some(T0 + 10),
            until_ts: Some(T0 + 30),
            ..DlqQuery::default()
        },
        &["m-1", "m-2"],
    )
    .await?;
    check(
        DlqQuery {
            since_ts: Some(T0 + 41),
            ..DlqQuery::default()
        },
        &[],
    )
    .await?;
    check(
        DlqQuery::by_ids([
            seeded[4].id.clone(),
            seeded[0].id.clone(),
            "dlq_nope".into(),
        ]),
        &["m-0", "m-4"],
    )
    .await?;
    check(DlqQuery::by_ids(Vec::<String>::new()), &[]).await?;
    // Filters combine.
    check(
        DlqQuery {
            to: Some("bob".into()),
            from: Some("alice".into()),
            acknowledged: Some(false),
            since_ts: Some(T0 + 1),
            ..DlqQuery::default()
        },
        &["m-4"],
    )
    .await?;
    // Hostile text is only ever a value.
    check(DlqQuery::for_target("bob' OR '1'='1"), &[]).await?;
    Ok(())
}

pub async fn query_orders(s: Store) -> TestResult {
    // original_ts, attempt_count and next_retry_at chosen to differ from
    // dlq_ts order, with ties to exercise the tie-breakers.
    let spec = [
        // id, dlq_ts, original_ts, attempt_count, next_retry_at
        ("dlq_e", T0, T0 - 10, 2, Some(T0 + 300)),
        ("dlq_a", T0 + 10, T0 - 50, 5, None),
        ("dlq_d", T0 + 20, T0 - 30, 1, Some(T0 + 100)),
        ("dlq_b", T0 + 20, T0 - 30, 5, Some(T0 + 100)),
        ("dlq_c", T0 + 30, T0 - 40, 2, None),
    ];
    for (i, (id, dlq_ts, original_ts, attempts, next)) in spec.into_iter().enumerate() {
        let mut rec = record(id, &format!("m-{i}"), "bob", dlq_ts);
        rec.original_ts = original_ts;
        rec.attempt_count = attempts;
        rec.next_retry_at = next;
        s.import(rec).await?;
    }
    let cases: [(DlqOrder, bool, [&str; 5]); 8] = [
        (
            DlqOrder::DlqTs,
            false,
            ["dlq_e", "dlq_a", "dlq_b", "dlq_d", "dlq_c"],
        ),
        (
            DlqOrder::DlqTs,
            true,
            ["dlq_c", "dlq_d", "dlq_b", "dlq_a", "dlq_e"],
        ),
        (
            DlqOrder::OriginalTs,
            false,
            ["dlq_a", "dlq_c", "dlq_b", "dlq_d", "dlq_e"],
        ),
        (
            DlqOrder::OriginalTs,
            true,
            ["dlq_e", "dlq_d", "dlq_b", "dlq_c", "dlq_a"],
        ),
        (
            DlqOrder::AttemptCount,
            false,
            ["dlq_d", "dlq_e", "dlq_c", "dlq_a", "dlq_b"],
        ),
        (
            DlqOrder::AttemptCount,
            true,
            ["dlq_b", "dlq_a", "dlq_c", "dlq_e", "dlq_d"],
        ),
        // No next_retry_at sorts last in both directions.
        (
            DlqOrder::NextRetryAt,
            false,
            ["dlq_b", "dlq_d", "dlq_e", "dlq_a", "dlq_c"],
        ),
        (
            DlqOrder::NextRetryAt,
            true,
            ["dlq_e", "dlq_d", "dlq_b", "dlq_c", "dlq_a"],
        ),
    ];
    for (order_by, descending, expected) in cases {
        let q = DlqQuery {
            order_by,
            descending,
            ..DlqQuery::default()
        };
        assert_eq!(
            ids(&s.query(&q).await?),
            expected,
            "{order_by:?} desc={descending}"
        );
    }
    Ok(())
}

pub async fn query_limit_and_offset(s: Store) -> TestResult {
    let total = DEFAULT_QUERY_LIMIT + 5;
    for i in 0..total {
        s.add(
            letter(&format!("m-{i:03}"), "alice", "bob", FailureReason::Unknown),
            T0 + i as i64,
            None,
        )
        .await?;
    }
    let default = s.query(&DlqQuery::all()).await?;
    assert_eq!(default.len(), DEFAULT_QUERY_LIMIT);
    assert_eq!(default[0].message_id, format!("m-{:03}", total - 1));
    let all = s
        .query(&DlqQuery {
            limit: Some(usize::MAX),
            ..DlqQuery::default()
        })
        .await?;
    assert_eq!(all.len(), total);
    let page = s
        .query(&DlqQuery {
            limit: Some(3),
            offset: 2,
            descending: false,
            ..DlqQuery::default()
        })
        .await?;
    assert_eq!(message_ids(&page), ["m-002", "m-003", "m-004"]);
    let tail = s
        .query(&DlqQuery {
            limit: Some(10),
            offset: DEFAULT_QUERY_LIMIT,
            ..DlqQuery::default()
        })
        .await?;
    assert_eq!(tail.len(), 5);
    assert_eq!(tail[4].message_id, "m-000");
    let past_end = DlqQuery {
        offset: total + 1,
        ..DlqQuery::default()
    };
    assert!(s.query(&past_end).await?.is_empty());
    let zero = DlqQuery {
        limit: Some(0),
        ..DlqQuery::default()
    };
    assert!(s.query(&zero).await?.is_empty());
    // count ignores limit and offset.
    assert_eq!(s.count(&past_end).await?, total as u64);
    assert_eq!(s.count(&zero).await?, total as u64);
    Ok(())
}

pub async fn purge_by_filter(s: Store) -> TestResult {
    let seeded = seed(&s).await?;
    let ttl = DlqQuery {
        reason: Some(FailureReason::TtlExpired),
        limit: Some(1),
        offset: 1,
        ..DlqQuery::default()
    };
    assert_eq!(s.purge(&ttl).await?, 2, "limit/offset are ignored by purge");
    assert_eq!(s.count(&DlqQuery::all()).await?, 3);
    assert_eq!(s.purge(&DlqQuery::by_ids([seeded[1].id.clone()])).await?, 1);
    assert_eq!(s.get(&seeded[1].id).await?, None);
    assert_eq!(s.purge(&DlqQuery::for_target("nobody")).await?, 0);
    assert_eq!(
        message_ids(
            &s.query(&DlqQuery {
                descending: false,
                ..DlqQuery::all()
            })
            .await?
        ),
        ["m-3", "m-4"]
    );
    assert_eq!(s.purge(&DlqQuery::all()).await?, 2);
    assert_eq!(s.count(&DlqQuery::all()).await?, 0);
    Ok(())
}

pub async fn stats_cover_everything(s: Store) -> TestResult {
    let empty = s.stats().await?;
    assert_eq!(empty.total, 0);
    assert_eq!(empty.by_reason.len(), 8);
    assert!(empty.by_reason.values().all(|n| *n == 0));
    assert_eq!(empty.by_state.len(), 4);
    assert!(empty.by_target.is_empty());
    assert_eq!(empty.oldest_ts, None);
    assert_eq!(empty.newest_ts, None);
    assert_eq!(empty.avg_retry_count, 0.0);

    let seeded = seed(&s).await?;
    // The oldest (m-0) and newest (m-4) are acknowledged: oldest/newest
    // describe unacknowledged letters only.
    s.acknowledge(
        &[seeded[0].id.clone(), seeded[4].id.clone()],
        "ops",
        T0 + 100,
    )
    .await?;
    s.set_state(&seeded[1].id, DlqState::Replaying, None, T0 + 100)
        .await?;
    s.set_state(&seeded[1].id, DlqState::Pending, None, T0 + 100)
        .await?;
    s.set_state(&seeded[1].id, DlqState::Replaying, None, T0 + 100)
        .await?;
    s.set_state(&seeded[2].id, DlqState::Replaying, None, T0 + 100)
        .await?;
    s.set_state(&seeded[2].id, DlqState::Delivered, None, T0 + 100)
        .await?;

    let stats = s.stats().await?;
    assert_eq!(stats.total, 5);
    // m-2 was acknowledged by its delivery.
    assert_eq!(stats.unacknowledged, 2);
    assert_eq!(stats.by_reason.len(), 8);
    for reason in FailureReason::ALL {
        let expected = match reason {
            FailureReason::TtlExpired => 2,
            FailureReason::ConnectionLost
            | FailureReason::TargetNotFound
            | FailureReason::RateLimited => 1,
            _ => 0,
        };
        assert_eq!(stats.by_reason[reason.as_str()], expected, "{reason}");
    }
    let targets: Vec<(&str, u64)> = stats
        .by_target
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(targets, [("bob", 3), ("carol", 1), ("erin", 1)]);
    assert_eq!(stats.by_state["pending"], 3);
    assert_eq!(stats.by_state["replaying"], 1);
    assert_eq!(stats.by_state["delivered"], 1);
    assert_eq!(stats.by_state["exhausted"], 0);
    assert_eq!(stats.oldest_ts, Some(T0 + 10));
    assert_eq!(stats.newest_ts, Some(T0 + 30));
    assert_eq!(stats.total_retries, 3);
    assert!((stats.avg_retry_count - 0.6).abs() < 1e-9);
    Ok(())
}
