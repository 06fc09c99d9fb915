//! Behavioural suite run unchanged against every backend.

#[macro_use]
mod common;

use common::*;
use relay_store::{
    ChannelMembership, MessageQuery, MessageStatus, Order, OwedBroadcast, SignatureHorizon,
    SignatureJson, StoreError, StoreStats, WriteOp,
};

suite!(
    round_trips_every_field,
    insert_replaces_same_id,
    filters_and_order,
    limit_and_offset,
    status_transitions,
    pending_for_returns_everything_in_order,
    message_by_id_prefix,
    sessions_lifecycle,
    session_message_count_follows_inserts,
    max_seq_by_session,
    agents_upsert_keeps_first_seen,
    remove_agent_with_and_without_messages,
    channel_membership,
    stats,
    retention_keeps_pending,
    query_sees_all_earlier_writes,
    throughput_smoke,
    proposals_upsert_list_and_prune,
    signatures_record_query_and_prune,
    signed_message_rows_count_as_recent_signatures,
    a_signer_clock_ahead_by_up_to_the_window_is_still_found,
    owed_broadcasts_are_replaced_listed_and_pruned,
    recent_send_ids_are_the_newest_unsigned_rows,
);

/// Signatures made at or after `since`, by signers up to `max_skew_ms` off the daemon's clock.
fn horizon(since: i64, max_skew_ms: i64) -> SignatureHorizon {
    SignatureHorizon { since, max_skew_ms }
}

fn insert(f: &Fixture, m: relay_store::StoredMessage) -> Result<(), StoreError> {
    f.store.write(WriteOp::InsertMessage(m))
}

async fn round_trips_every_field(f: Fixture) -> TestResult {
    let full = full_message("full-1");
    insert(&f, full.clone())?;
    let minimal = msg("min-1", 5, "carol", "dave");
    insert(&f, minimal.clone())?;
    assert_eq!(f.store.message_by_id_prefix("full-1").await?, Some(full));
    assert_eq!(f.store.message_by_id_prefix("min-1").await?, Some(minimal));
    Ok(())
}

async fn insert_replaces_same_id(f: Fixture) -> TestResult {
    insert(&f, msg("a", 10, "x", "y"))?;
    insert(&f, msg("b", 10, "x", "y"))?;
    let mut changed = msg("a", 10, "x", "y");
    changed.body = "edited".into();
    insert(&f, changed)?;
    let rows = f
        .store
        .messages(MessageQuery {
            order: Order::Asc,
            ..Default::default()
        })
        .await?;
    // Replacing re-inserts: the row moves behind its equal-ts sibling.
    assert_eq!(ids(&rows), ["b", "a"]);
    assert_eq!(rows[1].body, "edited");
    assert_eq!(f.store.stats().await?.message_count, 2);
    Ok(())
}

async fn filters_and_order(f: Fixture) -> TestResult {
    let mut m1 = msg("m1", 100, "alice", "bob");
    m1.topic = Some("t1".into());
    m1.thread = Some("th".into());
    let mut m2 = msg("m2", 200, "bob", "alice");
    m2.topic = Some("t2".into());
    m2.status = MessageStatus::Acked;
    let mut m3 = msg("m3", 200, "alice", "carol");
    m3.thread = Some("th".into());
    m3.status = MessageStatus::Failed;
    let m4 = with_status(msg("m4", 300, "alice", "#general"), MessageStatus::Acked);
    let m5 = msg("m5", 400, "carol", "bob");
    for m in [m1, m2, m3, m4, m5] {
        insert(&f, m)?;
    }
    let q = |q: MessageQuery| {
        let store = f.store.clone();
        async move { store.messages(q).await }
    };

    // Default: newest first, ties by insertion order reversed, no channel rows.
    assert_eq!(
        ids(&q(MessageQuery::default()).await?),
        ["m5", "m3", "m2", "m1"]
    );
    let asc = q(MessageQuery {
        order: Order::Asc,
        include_channel: true,
        ..Default::default()
    })
    .await?;
    assert_eq!(ids(&asc), ["m1", "m2", "m3", "m4", "m5"]);

    let by_from = q(MessageQuery {
        from: Some("alice".into()),
        order: Order::Asc,
        ..Default::default()
    })
    .await?;
    assert_eq!(ids(&by_from), ["m1", "m3"]);

    let by_to = q(MessageQuery {
        to: Some("bob".into()),
        ..Default::default()
    })
    .await?;
    assert_eq!(ids(&by_to), ["m5", "m1"]);

    let channel = q(MessageQuery {
        to: Some("#general".into()),
        ..Default::default()
    })
    .await?;
    assert_eq!(ids(&channel), ["m4"], "explicit `to` selects channel rows");

    let by_topic = q(MessageQuery {
        topic: Some("t2".into()),
        ..Default::default()
    })
    .await?;
    assert_eq!(ids(&by_topic), ["m2"]);

    let by_thread = q(MessageQuery {
        thread: Some("th".into()),
        order: Order::Asc,
        ..Default::default()
    })
    .await?;
    assert_eq!(ids(&by_thread), ["m1", "m3"]);

    let window = q(MessageQuery {
        since_ts: Some(200),
        until_ts: Some(400),
        include_channel: true,
        order: Order::Asc,
        ..Default::default()
    })
    .await?;
    assert_eq!(
        ids(&window),
        ["m2", "m3", "m4"],
        "since inclusive, until exclusive"
    );

    let settled = q(MessageQuery {
        statuses: Some(vec![MessageStatus::Acked, MessageStatus::Failed]),
        order: Order::Asc,
        ..Default::default()
    })
    .await?;
    assert_eq!(ids(&settled), ["m2", "m3"]);

    let none = q(MessageQuery {
        statuses: Some(vec![]),
        ..Default::default()
    })
    .await?;
    assert!(none.is_empty(), "empty status list matches nothing");

    let combined = q(MessageQuery {
        from: Some("alice".into()),
        statuses: Some(vec![MessageStatus::Acked]),
        include_channel: true,
        ..Default::default()
    })
    .await?;
    assert_eq!(ids(&combined), ["m4"]);
    Ok(())
}

async fn limit_and_offset(f: Fixture) -> TestResult {
    for i in 0..10 {
        insert(&f, msg(&format!("m{i}"), i, "a", "b"))?;
    }
    let page = |limit: Option<usize>, offset: Option<usize>, order: Order| MessageQuery {
        limit,
        offset,
        order,
        ..Default::default()
    };
    let rows = f.store.messages(page(Some(3), None, Order::Asc)).await?;
    assert_eq!(ids(&rows), ["m0", "m1", "m2"]);
    let rows = f.store.messages(page(Some(3), Some(3), Order::Asc)).await?;
    assert_eq!(ids(&rows), ["m3", "m4", "m5"]);
    let rows = f
        .store
        .messages(page(Some(2), Some(1), Order::Desc))
        .await?;
    assert_eq!(ids(&rows), ["m8", "m7"]);
    let rows = f.store.messages(page(None, Some(8), Order::Asc)).await?;
    assert_eq!(ids(&rows), ["m8", "m9"], "offset without limit");
    let rows = f
        .store
        .messages(page(Some(5), Some(20), Order::Asc))
        .await?;
    assert!(rows.is_empty());
    let rows = f.store.messages(page(None, None, Order::Asc)).await?;
    assert_eq!(rows.len(), 10);
    Ok(())
}

async fn status_transitions(f: Fixture) -> TestResult {
    insert(&f, msg("m", 1, "a", "b"))?;
    let get = || {
        let store = f.store.clone();
        async move {
            store
                .message_by_id_prefix("m")
                .await?
                .ok_or_else(|| StoreError::Internal("message vanished".into()))
        }
    };
    assert_eq!(get().await?.status, MessageStatus::Unread);

    f.store.write(WriteOp::SetDelivery {
        id: "m".into(),
        session_id: "s1".into(),
        seq: 7,
        status: MessageStatus::Read,
    })?;
    f.store
        .write(WriteOp::IncrementAttempts { id: "m".into() })?;
    let m = get().await?;
    assert_eq!(m.status, MessageStatus::Read);
    assert_eq!(m.delivery_session_id.as_deref(), Some("s1"));
    assert_eq!(m.delivery_seq, Some(7));
    assert_eq!(m.attempts, 1);

    // Redelivery into a new session re-sequences the message.
    f.store.write(WriteOp::SetDelivery {
        id: "m".into(),
        session_id: "s2".into(),
        seq: 1,
        status: MessageStatus::Read,
    })?;
    f.store
        .write(WriteOp::IncrementAttempts { id: "m".into() })?;
    f.store.write(WriteOp::SetStatus {
        id: "m".into(),
        status: MessageStatus::Failed,
        last_error: Some("recipient gone".into()),
    })?;
    let m = get().await?;
    assert_eq!(m.delivery_session_id.as_deref(), Some("s2"));
    assert_eq!(m.delivery_seq, Some(1));
    assert_eq!(m.attempts, 2);
    assert_eq!(m.status, MessageStatus::Failed);
    assert_eq!(m.last_error.as_deref(), Some("recipient gone"));

    // `last_error: None` keeps the recorded error.
    f.store.write(WriteOp::SetStatus {
        id: "m".into(),
        status: MessageStatus::Acked,
        last_error: None,
    })?;
    let m = get().await?;
    assert_eq!(m.status, MessageStatus::Acked);
    assert_eq!(m.last_error.as_deref(), Some("recipient gone"));

    // Updates to unknown ids are ignored, not errors.
    f.store.write(WriteOp::SetStatus {
        id: "nope".into(),
        status: MessageStatus::Acked,
        last_error: None,
    })?;
    f.store
        .write(WriteOp::IncrementAttempts { id: "nope".into() })?;
    f.store.flush().await?;
    assert_eq!(f.store.stats().await?.message_count, 1);
    Ok(())
}

async fn pending_for_returns_everything_in_order(f: Fixture) -> TestResult {
    // 1000 pending rows for bob with shuffled timestamps, interleaved with
    // rows that must not be returned.
    let mut expected = Vec::new();
    for i in 0..1000i64 {
        let ts = (i * 7919) % 1000; // a permutation of 0..1000
        let id = format!("p{i:04}");
        let status = if i % 2 == 0 {
            MessageStatus::Unread
        } else {
            MessageStatus::Read
        };
        insert(&f, with_status(msg(&id, ts, "alice", "bob"), status))?;
        expected.push((ts, id));
        insert(
            &f,
            with_status(
                msg(&format!("a{i}"), ts, "alice", "bob"),
                MessageStatus::Acked,
            ),
        )?;
        if i % 10 == 0 {
            insert(&f, msg(&format!("o{i}"), ts, "alice", "Bob"))?;
            insert(&f, msg(&format!("c{i}"), ts, "alice", "#bob"))?;
        }
    }
    // Two rows with the same ts keep insertion order.
    insert(&f, msg("tie-1", 5000, "alice", "bob"))?;
    insert(&f, msg("tie-2", 5000, "alice", "bob"))?;
    expected.sort();
    let mut expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    expected.push("tie-1".into());
    expected.push("tie-2".into());

    let pending = f.store.pending_for("bob").await?;
    assert_eq!(pending.len(), 1002);
    let got: Vec<String> = pending.iter().map(|m| m.id.clone()).collect();
    assert_eq!(got, expected);
    assert!(pending
        .iter()
        .all(|m| m.status.is_pending() && m.to == "bob"));

    let other = f.store.pending_for("Bob").await?;
    assert_eq!(other.len(), 100, "recipient match is case-sensitive");
    assert!(f.store.pending_for("nobody").await?.is_empty());
    Ok(())
}

async fn message_by_id_prefix(f: Fixture) -> TestResult {
    for id in ["abc", "abcdef", "abcxyz", "zzz-1", "q_1", "q%2"] {
        insert(&f, msg(id, 1, "a", "b"))?;
    }
    let find = |p: &str| {
        let store = f.store.clone();
        let p = p.to_string();
        async move { store.message_by_id_prefix(p).await }
    };
    assert_eq!(
        find("abc").await?.map(|m| m.id).as_deref(),
        Some("abc"),
        "exact wins"
    );
    assert_eq!(find("abcd").await?.map(|m| m.id).as_deref(), Some("abcdef"));
    assert_eq!(find("zz").await?.map(|m| m.id).as_deref(), Some("zzz-1"));
    match find("ab").await {
        Err(StoreError::AmbiguousId { prefix, count }) => {
            assert_eq!(prefix, "ab");
            assert_eq!(count, 3);
        }
        other => panic!("expected AmbiguousId, got {other:?}"),
    }
    assert!(find("nothing").await?.is_none());
    assert!(find("").await?.is_none());
    assert!(find("ABC").await?.is_none(), "ids are case-sensitive");
    assert_eq!(
        find("q_").await?.map(|m| m.id).as_deref(),
        Some("q_1"),
        "no LIKE wildcards"
    );
    // A unique suffix (the short id people see) works too.
    assert_eq!(find("xyz").await?.map(|m| m.id).as_deref(), Some("abcxyz"));
    assert_eq!(find("def").await?.map(|m| m.id).as_deref(), Some("abcdef"));
    insert(&f, msg("other-xyz", 1, "a", "b"))?;
    assert!(
        matches!(
            find("xyz").await,
            Err(StoreError::AmbiguousId { count: 2, .. })
        ),
        "an ambiguous suffix is an error"
    );
    // The SEND id a sender saw finds the stored delivery (the earliest, for a broadcast).
    let mut first = msg("deliver-1", 5, "a", "b");
    first.source_id = Some("send-7".into());
    let mut second = msg("deliver-2", 6, "a", "c");
    second.source_id = Some("send-7".into());
    insert(&f, second)?;
    insert(&f, first)?;
    assert_eq!(
        find("send-7").await?.map(|m| m.id).as_deref(),
        Some("deliver-1")
    );
    assert!(
        find("send-").await?.is_none(),
        "the SEND id must match exactly"
    );
    Ok(())
}

async fn sessions_lifecycle(f: Fixture) -> TestResult {
    f.store.write(WriteOp::StartSession(session(
        "s1",
        "bob",
        100,
        Some("tok-1"),
    )))?;
    let s = f.store.session_by_resume_token("tok-1").await?;
    assert_eq!(s, Some(session("s1", "bob", 100, Some("tok-1"))));

    f.store.write(WriteOp::EndSession {
        id: "s1".into(),
        ended_at: 150,
        closed_by: "disconnect".into(),
    })?;
    let s = f.store.session_by_resume_token("tok-1").await?;
    assert_eq!(s.as_ref().and_then(|s| s.ended_at), Some(150));
    assert_eq!(
        s.as_ref().and_then(|s| s.closed_by.as_deref()),
        Some("disconnect")
    );

    // Restarting the same session keeps started_at and reopens it.
    let mut again = session("s1", "bob", 999, Some("tok-2"));
    again.cli = Some("codex".into());
    again.message_count = 55;
    again.ended_at = Some(1);
    f.store.write(WriteOp::StartSession(again))?;
    assert_eq!(f.store.session_by_resume_token("tok-1").await?, None);
    let s = f
        .store
        .session_by_resume_token("tok-2")
        .await?
        .ok_or("session missing")?;
    assert_eq!(s.started_at, 100);
    assert_eq!(s.message_count, 0);
    assert_eq!(s.cli.as_deref(), Some("codex"));
    assert_eq!(s.ended_at, None);
    assert_eq!(s.closed_by, None);

    // The most recently started session wins a shared token.
    f.store.write(WriteOp::StartSession(session(
        "s2",
        "bob",
        200,
        Some("tok-2"),
    )))?;
    let s = f.store.session_by_resume_token("tok-2").await?;
    assert_eq!(s.map(|s| s.id).as_deref(), Some("s2"));

    // Ending an unknown session is a no-op.
    f.store.write(WriteOp::EndSession {
        id: "ghost".into(),
        ended_at: 1,
        closed_by: "x".into(),
    })?;
    assert_eq!(f.store.stats().await?.session_count, 2);
    Ok(())
}

async fn session_message_count_follows_inserts(f: Fixture) -> TestResult {
    f.store
        .write(WriteOp::StartSession(session("s1", "alice", 1, Some("t"))))?;
    for i in 0..3 {
        let mut m = msg(&format!("m{i}"), i, "alice", "bob");
        m.session_id = Some("s1".into());
        insert(&f, m)?;
    }
    // Replacing an existing message does not count twice.
    let mut m = msg("m0", 0, "alice", "bob");
    m.session_id = Some("s1".into());
    insert(&f, m)?;
    let s = f.store.session_by_resume_token("t").await?;
    assert_eq!(s.map(|s| s.message_count), Some(3));
    Ok(())
}

async fn max_seq_by_session(f: Fixture) -> TestResult {
    let delivered = |id: &str, from: &str, topic: Option<&str>, sess: &str, seq: i64| {
        let mut m = msg(id, seq, from, "bob");
        m.topic = topic.map(str::to_string);
        m.delivery_session_id = Some(sess.into());
        m.delivery_seq = Some(seq);
        m
    };
    for m in [
        delivered("1", "alice", None, "s1", 1),
        delivered("2", "alice", None, "s1", 4),
        delivered("3", "alice", Some("t"), "s1", 2),
        delivered("4", "carol", Some("t"), "s1", 9),
        delivered("5", "alice", None, "s2", 50),
        msg("6", 1, "alice", "bob"),
    ] {
        insert(&f, m)?;
    }
    let seeds = f.store.max_seq_by_session("s1").await?;
    assert_eq!(
        seeds,
        vec![
            ("alice".to_string(), None, 4),
            ("alice".to_string(), Some("t".to_string()), 2),
            ("carol".to_string(), Some("t".to_string()), 9),
        ]
    );
    assert_eq!(
        f.store.max_seq_by_session("s2").await?,
        vec![("alice".to_string(), None, 50)]
    );
    assert!(f.store.max_seq_by_session("s3").await?.is_empty());
    Ok(())
}

async fn agents_upsert_keeps_first_seen(f: Fixture) -> TestResult {
    f.store
        .write(WriteOp::UpsertAgent(agent("zed", 100, 100)))?;
    f.store.write(WriteOp::UpsertAgent(agent("amy", 50, 60)))?;
    let mut newer = agent("zed", 500, 600);
    newer.model = Some("model-y".into());
    newer.task = None;
    newer.messages_sent = 9;
    f.store.write(WriteOp::UpsertAgent(newer))?;
    let mut older = agent("amy", 10, 70);
    older.entity_type = "user".into();
    f.store.write(WriteOp::UpsertAgent(older))?;

    let agents = f.store.agents().await?;
    assert_eq!(agents.len(), 2);
    assert_eq!(agents[0].name, "amy", "sorted by name");
    assert_eq!(agents[0].first_seen, 10, "earlier first_seen replaces");
    assert_eq!(agents[0].last_seen, 70);
    assert_eq!(agents[0].entity_type, "user");
    assert_eq!(agents[1].name, "zed");
    assert_eq!(agents[1].first_seen, 100, "later first_seen is ignored");
    assert_eq!(agents[1].last_seen, 600);
    assert_eq!(agents[1].model.as_deref(), Some("model-y"));
    assert_eq!(agents[1].task, None, "other fields are replaced");
    assert_eq!(agents[1].messages_sent, 9);
    Ok(())
}

async fn remove_agent_with_and_without_messages(f: Fixture) -> TestResult {
    for name in ["alice", "bob"] {
        f.store.write(WriteOp::UpsertAgent(agent(name, 1, 1)))?;
        f.store.write(WriteOp::StartSession(session(
            &format!("s-{name}"),
            name,
            1,
            Some(&format!("t-{name}")),
        )))?;
        f.store.write(WriteOp::JoinChannel(ChannelMembership {
            channel: "#general".into(),
            member: name.to_uppercase(),
            joined_at: 1,
        }))?;
    }
    insert(&f, msg("ab", 1, "alice", "bob"))?;
    insert(&f, msg("ba", 2, "bob", "alice"))?;
    insert(&f, msg("bc", 3, "bob", "carol"))?;

    f.store.write(WriteOp::RemoveAgent {
        name: "alice".into(),
        remove_messages: false,
        replayable: horizon(0, 0),
    })?;
    let agents = f.store.agents().await?;
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].name, "bob");
    assert!(f.store.session_by_resume_token("t-alice").await?.is_none());
    assert!(f.store.session_by_resume_token("t-bob").await?.is_some());
    let members = f.store.channel_memberships().await?;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].member, "BOB");
    assert_eq!(f.store.stats().await?.message_count, 3, "messages kept");

    f.store.write(WriteOp::RemoveAgent {
        name: "bob".into(),
        remove_messages: true,
        replayable: horizon(0, 0),
    })?;
    assert!(f.store.agents().await?.is_empty());
    assert!(f.store.channel_memberships().await?.is_empty());
    assert_eq!(
        f.store.stats().await?.message_count,
        0,
        "from and to bob removed"
    );
    Ok(())
}

async fn channel_membership(f: Fixture) -> TestResult {
    let join = |channel: &str, member: &str, at: i64| {
        WriteOp::JoinChannel(ChannelMembership {
            channel: channel.into(),
            member: member.into(),
            joined_at: at,
        })
    };
    f.store.write(join("#general", "Alice", 10))?;
    f.store.write(join("#general", "alice", 20))?;
    f.store.write(join("#general", "ALICE", 30))?;
    f.store.write(join("#dev", "alice", 40))?;
    f.store.write(join("#general", "bob", 50))?;
    f.store.write(join("#General", "bob", 60))?;

    let members = f.store.channel_memberships().await?;
    let expected = vec![
        ChannelMembership {
            channel: "#General".into(),
            member: "bob".into(),
            joined_at: 60,
        },
        ChannelMembership {
            channel: "#dev".into(),
            member: "alice".into(),
            joined_at: 40,
        },
        ChannelMembership {
            channel: "#general".into(),
            member: "Alice".into(),
            joined_at: 10,
        },
        ChannelMembership {
            channel: "#general".into(),
            member: "bob".into(),
            joined_at: 50,
        },
    ];
    assert_eq!(members, expected);

    f.store.write(WriteOp::LeaveChannel {
        channel: "#general".into(),
        member: "aLiCe".into(),
    })?;
    f.store.write(WriteOp::LeaveChannel {
        channel: "#nowhere".into(),
        member: "bob".into(),
    })?;
    let members = f.store.channel_memberships().await?;
    let names: Vec<(&str, &str)> = members
        .iter()
        .map(|m| (m.channel.as_str(), m.member.as_str()))
        .collect();
    assert_eq!(
        names,
        [("#General", "bob"), ("#dev", "alice"), ("#general", "bob")]
    );
    Ok(())
}

async fn stats(f: Fixture) -> TestResult {
    assert_eq!(
        f.store.stats().await?,
        StoreStats {
            message_count: 0,
            pending_count: 0,
            session_count: 0,
            agent_count: 0,
            oldest_message_ts: None,
        }
    );
    insert(&f, msg("u", 300, "a", "b"))?;
    insert(
        &f,
        with_status(msg("r", 200, "a", "b"), MessageStatus::Read),
    )?;
    insert(
        &f,
        with_status(msg("k", 400, "a", "b"), MessageStatus::Acked),
    )?;
    insert(
        &f,
        with_status(msg("x", 500, "a", "b"), MessageStatus::Failed),
    )?;
    insert(&f, msg("c", 250, "a", "#chan"))?;
    f.store
        .write(WriteOp::StartSession(session("s", "a", 1, None)))?;
    f.store.write(WriteOp::UpsertAgent(agent("a", 1, 1)))?;
    f.store.write(WriteOp::UpsertAgent(agent("b", 1, 1)))?;
    assert_eq!(
        f.store.stats().await?,
        StoreStats {
            message_count: 5,
            pending_count: 2,
            session_count: 1,
            agent_count: 2,
            oldest_message_ts: Some(200),
        }
    );
    Ok(())
}

async fn retention_keeps_pending(f: Fixture) -> TestResult {
    let old = 1_000;
    let new = 10_000;
    for (id, ts, to, status) in [
        ("old-unread", old, "bob", MessageStatus::Unread),
        ("old-read", old, "bob", MessageStatus::Read),
        ("old-acked", old, "bob", MessageStatus::Acked),
        ("old-failed", old, "bob", MessageStatus::Failed),
        ("old-channel", old, "#general", MessageStatus::Unread),
        ("old-channel-acked", old, "#general", MessageStatus::Acked),
        ("new-acked", new, "bob", MessageStatus::Acked),
        ("new-channel", new, "#general", MessageStatus::Acked),
        ("edge-acked", 5_000, "bob", MessageStatus::Acked),
    ] {
        insert(&f, with_status(msg(id, ts, "alice", to), status))?;
    }
    let deleted = f.store.cleanup(5_000).await?;
    assert_eq!(deleted, 4);
    let rest = f
        .store
        .messages(MessageQuery {
            include_channel: true,
            order: Order::Asc,
            ..Default::default()
        })
        .await?;
    assert_eq!(
        ids(&rest),
        [
            "old-unread",
            "old-read",
            "edge-acked",
            "new-acked",
            "new-channel"
        ]
    );
    // Even a cutoff in the future never touches pending rows.
    assert_eq!(f.store.cleanup(i64::MAX).await?, 3);
    assert_eq!(
        ids(&f.store.pending_for("bob").await?),
        ["old-unread", "old-read"]
    );
    assert_eq!(f.store.metrics().cleanup_deleted, 7);
    Ok(())
}

async fn query_sees_all_earlier_writes(f: Fixture) -> TestResult {
    for round in 0..20i64 {
        for i in 0..50 {
            insert(&f, msg(&format!("r{round}-{i}"), round * 100 + i, "a", "b"))?;
        }
        // No flush: the query itself must observe every write queued before it.
        let stats = f.store.stats().await?;
        assert_eq!(stats.message_count, (round + 1) * 50);
        f.store.write(WriteOp::SetStatus {
            id: format!("r{round}-0"),
            status: MessageStatus::Acked,
            last_error: None,
        })?;
        let acked = f
            .store
            .messages(MessageQuery {
                statuses: Some(vec![MessageStatus::Acked]),
                ..Default::default()
            })
            .await?;
        assert_eq!(acked.len() as i64, round + 1);
    }
    let m = f.store.metrics();
    assert_eq!(m.ops_committed, 20 * 51);
    assert!(m.batches_committed <= m.ops_committed);
    Ok(())
}

async fn throughput_smoke(f: Fixture) -> TestResult {
    const N: usize = 50_000;
    for i in 0..N {
        let mut m = msg(&format!("bulk-{i:06}"), i as i64, "sender", "receiver");
        m.topic = Some("load".into());
        insert(&f, m)?;
    }
    f.store.flush().await?;
    let metrics = f.store.metrics();
    assert_eq!(metrics.ops_committed, N as u64);
    assert_eq!(metrics.queue_depth, 0);
    assert_eq!(metrics.lost_ops, 0);
    // 50,000 writes take the writer thread milliseconds of CPU at the very least.
    assert!(
        metrics.writer_cpu_us >= 1_000,
        "writer CPU {} µs",
        metrics.writer_cpu_us
    );
    assert_eq!(f.store.stats().await?.message_count, N as i64);
    assert_eq!(f.store.pending_for("receiver").await?.len(), N);
    Ok(())
}

async fn proposals_upsert_list_and_prune(f: Fixture) -> TestResult {
    use relay_store::ProposalRecord;
    let rec = |id: &str, status: &str, at: i64| ProposalRecord {
        id: id.into(),
        status: status.into(),
        updated_at: at,
        body: serde_json::json!({"id": id, "status": status, "votes": [{"voter": "A"}]}),
    };
    f.store
        .write(WriteOp::UpsertProposal(rec("prop_b", "pending", 10)))?;
    f.store
        .write(WriteOp::UpsertProposal(rec("prop_a", "approved", 10)))?;
    f.store
        .write(WriteOp::UpsertProposal(rec("prop_c", "rejected", 500)))?;
    f.store
        .write(WriteOp::UpsertProposal(rec("prop_b", "pending", 20)))?;
    let all = f.store.proposals().await?;
    assert_eq!(
        all.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["prop_a", "prop_b", "prop_c"]
    );
    assert_eq!(
        all[1],
        rec("prop_b", "pending", 20),
        "an upsert replaces the stored proposal"
    );
    f.store.write(WriteOp::PruneProposals {
        settled_before: 100,
    })?;
    let left = f.store.proposals().await?;
    assert_eq!(
        left.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["prop_b", "prop_c"],
        "old settled proposals go; pending ones never do"
    );
    Ok(())
}

/// A stored signed message keeps its signature in the row, read back byte for byte whatever
/// its layout: it counts for replay protection without a separate record, also after the
/// agent's messages are removed.
async fn signed_message_rows_count_as_recent_signatures(f: Fixture) -> TestResult {
    let hmac = "0f".repeat(32);
    let ed25519 = "a5".repeat(64);
    let signatures = [
        // Not in the clients' layout (upper-case hex, short key id): kept as text.
        (
            "row-1",
            "send-1",
            r#"{"s":"AAAA","k":"k1","t":1000,"a":"hmac-sha256","m":"send-1"}"#.to_string(),
        ),
        // The clients' layout, `m` the row's source id: packed by SQLite.
        (
            "row-3",
            "send-3",
            format!(
                r#"{{"s":"{hmac}","k":"00112233445566ff","t":1100,"a":"hmac-sha256","m":"send-3"}}"#
            ),
        ),
        // The clients' layout, `m` another id (a forwarded copy): packed with its id.
        (
            "row-4",
            "copy-4",
            format!(
                r#"{{"s":"{ed25519}","k":"ffeeddccbbaa9988","t":1200,"a":"ed25519","m":"send-4"}}"#
            ),
        ),
    ];
    for (id, source_id, sig) in &signatures {
        let mut signed = msg(id, 1_000, "Alice", "Bob");
        signed.source_id = Some(source_id.to_string());
        signed.sig = SignatureJson::from_text(sig.clone());
        insert(&f, signed)?;
    }
    insert(&f, msg("row-2", 1_000, "Alice", "Bob"))?;
    for (id, _, sig) in &signatures {
        let stored = f
            .store
            .message_by_id_prefix(*id)
            .await?
            .ok_or("row missing")?;
        assert_eq!(
            stored.sig.as_ref().map(SignatureJson::get),
            Some(sig.as_str()),
            "{id}"
        );
    }
    let expected = vec![
        ("Alice".to_string(), "send-1".to_string(), 1_000),
        ("Alice".to_string(), "send-3".to_string(), 1_100),
        ("Alice".to_string(), "send-4".to_string(), 1_200),
    ];
    let sorted = |mut v: Vec<(String, String, i64)>| {
        v.sort_by_key(|(_, _, t)| *t);
        v
    };
    assert_eq!(
        sorted(f.store.recent_signatures(horizon(500, 300_000)).await?),
        expected
    );
    assert_eq!(
        sorted(f.store.recent_signatures(horizon(1_100, 300_000)).await?),
        expected[1..]
    );
    assert!(f
        .store
        .recent_signatures(horizon(2_000, 300_000))
        .await?
        .is_empty());

    // Removing Alice's messages keeps the signatures they hold that can still be replayed
    // (made at or after 1,100 here) in the replay table; the older one goes with its row.
    f.store.write(WriteOp::RemoveAgent {
        name: "Alice".into(),
        remove_messages: true,
        replayable: horizon(1_100, 300_000),
    })?;
    assert_eq!(f.store.message_by_id_prefix("row-1").await?, None);
    assert_eq!(
        sorted(f.store.recent_signatures(horizon(500, 300_000)).await?),
        expected[1..]
    );
    Ok(())
}

/// A signer whose clock ran ahead of the daemon's (by less than the replay window) made a
/// signature later than the row holding it was stored: the row is still found when it is older
/// than `since` by up to the window.
async fn a_signer_clock_ahead_by_up_to_the_window_is_still_found(f: Fixture) -> TestResult {
    let hour = 3_600_000;
    let t = 10 * hour;
    let mut row = msg("ahead", t - 50 * 60_000, "Alice", "Bob"); // stored 50 minutes before t
    row.source_id = Some("send-ahead".into());
    row.sig = SignatureJson::from_text(format!(
        r#"{{"s":"{}","k":"00112233445566ff","t":{t},"a":"hmac-sha256","m":"send-ahead"}}"#,
        "ab".repeat(32)
    ));
    insert(&f, row)?;
    let since = t - 10 * 60_000;
    assert_eq!(
        f.store.recent_signatures(horizon(since, hour)).await?,
        [("Alice".to_string(), "send-ahead".to_string(), t)]
    );
    Ok(())
}

async fn signatures_record_query_and_prune(f: Fixture) -> TestResult {
    for (signer, m, t) in [("A", "m1", 100), ("A", "m2", 200), ("B", "m1", 300)] {
        f.store.write(WriteOp::RecordSignature {
            signer: signer.into(),
            m: m.into(),
            t,
        })?;
    }
    let recent = f.store.recent_signatures(horizon(150, 300_000)).await?;
    assert_eq!(
        recent,
        [
            ("A".to_string(), "m2".to_string(), 200),
            ("B".to_string(), "m1".to_string(), 300)
        ]
    );
    f.store.write(WriteOp::PruneSignatures { before: 250 })?;
    assert_eq!(
        f.store.recent_signatures(horizon(0, 300_000)).await?.len(),
        1
    );
    Ok(())
}

fn owed(sender: &str, id: &str, recipients: &[&str], updated_at: i64) -> OwedBroadcast {
    OwedBroadcast {
        sender: sender.into(),
        id: id.into(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        updated_at,
    }
}

/// Who is owed a broadcast is replaced as a whole by each write (a retry strikes off those it
/// reached), forgotten when nobody is left, listed oldest first from a time, and pruned by age.
async fn owed_broadcasts_are_replaced_listed_and_pruned(f: Fixture) -> TestResult {
    f.store.write(WriteOp::SetOwed(owed(
        "Alice",
        "b-1",
        &["Dave", "Carol"],
        100,
    )))?;
    f.store
        .write(WriteOp::SetOwed(owed("Bob", "b-1", &["Alice"], 200)))?;
    f.store
        .write(WriteOp::SetOwed(owed("Alice", "b-2", &["Carol"], 300)))?;
    assert_eq!(
        f.store.owed_broadcasts(0).await?,
        [
            owed("Alice", "b-1", &["Carol", "Dave"], 100),
            owed("Bob", "b-1", &["Alice"], 200),
            owed("Alice", "b-2", &["Carol"], 300),
        ]
    );
    assert_eq!(
        f.store.owed_broadcasts(200).await?,
        [
            owed("Bob", "b-1", &["Alice"], 200),
            owed("Alice", "b-2", &["Carol"], 300)
        ]
    );

    // A retry reached Carol: Dave alone is still owed, as of the retry.
    f.store
        .write(WriteOp::SetOwed(owed("Alice", "b-1", &["Dave"], 400)))?;
    // A retry reached everyone: forgotten.
    f.store
        .write(WriteOp::SetOwed(owed("Bob", "b-1", &[], 400)))?;
    assert_eq!(
        f.store.owed_broadcasts(0).await?,
        [
            owed("Alice", "b-2", &["Carol"], 300),
            owed("Alice", "b-1", &["Dave"], 400),
        ]
    );

    f.store.write(WriteOp::PruneOwed { before: 350 })?;
    assert_eq!(
        f.store.owed_broadcasts(0).await?,
        [owed("Alice", "b-1", &["Dave"], 400)]
    );
    Ok(())
}

/// What the duplicate check is rebuilt from after a restart: the SEND ids of recent unsigned
/// rows (signed ones are the replay cache's), the newest `limit`, oldest first.
async fn recent_send_ids_are_the_newest_unsigned_rows(f: Fixture) -> TestResult {
    for (id, ts, from, source) in [
        ("r1", 100, "Alice", Some("s-1")),
        ("r2", 200, "Alice", Some("s-2")),
        ("r3", 200, "Bob", Some("s-2")),
        ("r4", 300, "Alice", None),
        ("r5", 400, "Bob", Some("s-3")),
    ] {
        let mut row = msg(id, ts, from, "Carol");
        row.source_id = source.map(str::to_string);
        insert(&f, row)?;
    }
    let mut signed = msg("r6", 500, "Alice", "Carol");
    signed.source_id = Some("s-4".into());
    signed.sig = SignatureJson::from_text(
        r#"{"s":"AAAA","k":"k1","t":500,"a":"hmac-sha256","m":"s-4"}"#.to_string(),
    );
    insert(&f, signed)?;

    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        f.store.recent_send_ids(150, 10).await?,
        [pair("Alice", "s-2"), pair("Bob", "s-2"), pair("Bob", "s-3")]
    );
    assert_eq!(
        f.store.recent_send_ids(0, 2).await?,
        [pair("Bob", "s-2"), pair("Bob", "s-3")]
    );
    assert!(f.store.recent_send_ids(450, 10).await?.is_empty());
    Ok(())
}
