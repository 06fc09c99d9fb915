//! Context compaction end to end: a real daemon on a temp socket, SDK agents that talk until
//! their histories pass a small token budget, and what they are handed.

mod common;

use std::time::Duration;

use common::{fast_config, TestDaemon};
use relay_client::{Client, ClientConfig, ClientError, Delivered, Event, EventStream, SendOptions};
use relay_config::RelayConfig;
use relay_protocol::{ContextResponsePayload, ErrorCode};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

/// max_tokens 2000, threshold 0.8 (1600 tokens), target 0.5 (1000 tokens), keep_recent 5,
/// heuristic token counts.
fn small_budget() -> RelayConfig {
    let mut c = fast_config();
    c.limits.rate_limit_enabled = false;
    c.compaction.enabled = true;
    c.compaction.max_tokens = 2000;
    c.compaction.threshold = 0.8;
    c.compaction.target_usage = 0.5;
    c.compaction.keep_recent = 5;
    c.compaction.tokenizer = "heuristic".into();
    c
}

struct Agent {
    name: String,
    client: Client,
    events: EventStream,
    /// Compacted contexts received so far, oldest first.
    contexts: Vec<Delivered>,
}

fn is_context(m: &Delivered) -> bool {
    m.from == "_system"
        && m.payload
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key("_contextCompaction"))
}

fn info(m: &Delivered) -> Value {
    m.payload
        .data
        .as_ref()
        .and_then(|d| d.get("_contextCompaction"))
        .cloned()
        .unwrap_or(Value::Null)
}

impl Agent {
    async fn connect(d: &TestDaemon, name: &str) -> Agent {
        let mut config = ClientConfig::new(&d.socket, name);
        config.reconnect = false;
        let (client, events) = Client::connect(config).await.expect("connect");
        Agent {
            name: name.to_string(),
            client,
            events,
            contexts: Vec::new(),
        }
    }

    async fn send(&self, to: &str, body: &str) {
        self.client
            .send(SendOptions::new(to, body))
            .await
            .expect("send");
    }

    /// The next event within `d`, keeping contexts aside; `None` on timeout.
    async fn next_message(&mut self, d: Duration) -> Option<Delivered> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .ok()??;
            match event {
                Event::Message(m) if is_context(&m) => {
                    self.contexts.push(m.clone());
                    return Some(m);
                }
                Event::Message(m) => return Some(m),
                Event::Closed { reason } => panic!("{}: connection closed: {reason}", self.name),
                _ => {}
            }
        }
    }

    /// Waits for the message `body` (from anyone), collecting contexts on the way.
    async fn expect_body(&mut self, body: &str) -> Delivered {
        loop {
            let m = self
                .next_message(WAIT)
                .await
                .unwrap_or_else(|| panic!("{}: no message {body:?} within {WAIT:?}", self.name));
            if m.payload.body == body {
                return m;
            }
        }
    }

    /// The next compacted context within `d`.
    async fn next_context(&mut self, d: Duration) -> Option<Delivered> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = self.next_message(left).await?;
            if is_context(&m) {
                return Some(m);
            }
        }
    }

    /// Reads whatever arrives within `d`.
    async fn drain(&mut self, d: Duration) {
        while self.next_message(d).await.is_some() {}
    }
}

/// One line of the conversation: (from, to, body), in the order it was routed.
type Line = (String, String, String);

/// The facts stated early on, which must survive compaction.
const FACTS: [&str; 3] = [
    "Decision: we use PostgreSQL 15 on port 5433 for the orders service.",
    "Agreed, I will point the connection pool at port 5433 and keep pgbouncer out of it.",
    "Decision: the public API stays REST with cursor pagination; no GraphQL this quarter.",
];

/// `a` and `b` talk in turns, each message delivered before the next is sent: first the facts,
/// then `n` routine messages. Returns the conversation in routing order.
///
/// Both histories are rebuilt from storage before the talk starts, and every message is handled
/// by the compaction service (and any compaction it started has finished) before the next is
/// sent: what the agents are handed then depends on the conversation alone, not on how fast the
/// machine runs the service. (On a loaded machine a slow rebuild used to let messages pile up
/// and a slow compaction let the history grow past the point it was meant to be compacted at.)
/// With compaction disabled the talk is not paced.
async fn converse(d: &TestDaemon, a: &mut Agent, b: &mut Agent, n: usize) -> Vec<Line> {
    let t = tool(d).await;
    let paced = compaction_metrics(&t).await != Value::Null;
    if paced {
        for agent in [&a.name, &b.name] {
            t.context(agent, false, false)
                .await
                .expect("CONTEXT rebuilds the history");
        }
    }
    let mut lines = Vec::new();
    for (i, fact) in FACTS.iter().enumerate() {
        say(a, b, i, fact, &mut lines).await;
        settle(&t, paced).await;
    }
    for i in 0..n {
        let body = if i.is_multiple_of(2) {
            format!("Progress check {i}: how far along is the customer import batch?")
        } else {
            format!("Batch {i} of the customer import is loaded; moving on to the next one.")
        };
        say(a, b, i + FACTS.len(), &body, &mut lines).await;
        settle(&t, paced).await;
    }
    t.close().await;
    lines
}

/// Waits, when `paced`, until the compaction service has handled every event routed so far and
/// runs no compaction (it reports a compaction finished only after handing its context to the
/// router).
async fn settle(t: &Client, paced: bool) {
    if !paced {
        return;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = compaction_metrics(t).await;
        if m["queuedEvents"] == 0 && m["compacting"] == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the compaction service did not settle within {WAIT:?}: {m}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn say(a: &mut Agent, b: &mut Agent, i: usize, body: &str, lines: &mut Vec<Line>) {
    let (from, to) = if i.is_multiple_of(2) { (a, b) } else { (b, a) };
    from.send(&to.name, body).await;
    to.expect_body(body).await;
    lines.push((from.name.clone(), to.name.clone(), body.to_string()));
}

/// A tool connection for CONTEXT, STATUS and METRICS.
async fn tool(d: &TestDaemon) -> Client {
    let mut config = ClientConfig::new(&d.socket, format!("cli-test-{}", fastrand::u32(..)));
    config.system_component = true;
    config.reconnect = false;
    Client::connect(config).await.expect("tool connects").0
}

async fn compaction_metrics(c: &Client) -> Value {
    let m = c.metrics().await.expect("METRICS");
    m.daemon
        .and_then(|d| d.get("compaction").cloned())
        .unwrap_or(Value::Null)
}

fn rendered(l: &Line) -> String {
    format!("{} → {}: {}", l.0, l.1, l.2)
}

/// The index of the newest line of `lines` that `content` holds verbatim.
fn newest_in(content: &str, lines: &[Line]) -> Option<usize> {
    lines.iter().rposition(|l| content.contains(&rendered(l)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_over_budget_gets_its_compacted_context() {
    let d = TestDaemon::start(small_budget()).await;
    let mut lead = Agent::connect(&d, "Lead").await;
    let mut backend = Agent::connect(&d, "Backend").await;
    let lines = converse(&d, &mut lead, &mut backend, 80).await;
    backend.drain(Duration::from_millis(500)).await;

    let context = backend
        .contexts
        .last()
        .cloned()
        .expect("Backend received a compacted context");
    assert_eq!(context.payload.kind.as_str(), "state");
    let info = info(&context);
    let content = &context.payload.body;
    let tokens = info["tokens"].as_u64().expect("tokens");
    let target = info["targetTokens"].as_u64().expect("targetTokens");
    assert_eq!(target, 1000);
    assert!(tokens <= target, "{tokens} tokens, target {target}: {info}");
    assert_eq!(info["outcome"], "reached", "{info}");
    // Optional fields are left out, never null (PROTOCOL §2): no reason when the target was met.
    assert!(info.get("reason").is_none(), "{info}");
    assert!(
        info.as_object()
            .is_some_and(|o| o.values().all(|v| !v.is_null())),
        "{info}"
    );
    assert!(
        info["originalTokens"].as_u64().unwrap_or(0) > 1600,
        "{info}"
    );
    assert!(info["snapshotId"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(info["summarizer"], "built_in");
    // The whole text, headers included, stays near the budget.
    let counter = relay_compaction::TokenCounter::new(relay_compaction::TokenizerMode::Heuristic);
    assert!(
        counter.count(content) <= 1100,
        "{} tokens of text:\n{content}",
        counter.count(content)
    );

    // The 5 most recent messages at the time of compaction are there verbatim, in order.
    let newest = newest_in(content, &lines).expect("recent messages are verbatim");
    assert!(
        newest >= 60,
        "the last context is from late in the conversation ({newest})"
    );
    let mut at = 0;
    for line in &lines[newest - 4..=newest] {
        let pos = content[at..]
            .find(&rendered(line))
            .unwrap_or_else(|| panic!("{:?} missing or out of order in:\n{content}", line.2));
        at += pos;
    }
    // The key earlier facts made it into the summary.
    for fact in ["PostgreSQL 15", "5433", "no GraphQL"] {
        assert!(content.contains(fact), "{fact:?} missing from:\n{content}");
    }
    assert!(
        content.contains("--- summary of earlier messages ---"),
        "{content}"
    );

    // Lead took part in the same conversation and was compacted as well.
    lead.drain(Duration::from_millis(200)).await;
    assert!(!lead.contexts.is_empty(), "Lead got its context too");

    let t = tool(&d).await;
    let m = compaction_metrics(&t).await;
    let counters = &m["counters"];
    assert_eq!(counters["events"].as_u64(), Some(lines.len() as u64), "{m}");
    assert!(counters["compactions"].as_u64().unwrap_or(0) >= 2, "{m}");
    assert!(counters["injections"].as_u64().unwrap_or(0) >= 2, "{m}");
    assert_eq!(counters["droppedEvents"], 0, "{m}");
    assert_eq!(m["thresholdTokens"], 1600);
    let status = t.status().await.expect("STATUS");
    assert_eq!(status.extra["compaction"]["enabled"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_context_is_injected_while_a_sync_wait_is_pending() {
    let d = TestDaemon::start(small_budget()).await;
    let lead = Agent::connect(&d, "Lead").await;
    let mut backend = Agent::connect(&d, "Backend").await;
    let qa = Agent::connect(&d, "QA").await;

    // Lead waits for Backend's answer: Backend is the awaited recipient.
    let pending = lead
        .client
        .send_sync(
            SendOptions::new("Backend", "Can you review the migration plan? [await]"),
            Duration::from_secs(30),
        )
        .await
        .expect("sync send");
    let asked = backend
        .expect_body("Can you review the migration plan? [await]")
        .await;

    // Meanwhile QA's reports push Backend's history past the threshold.
    for i in 0..70 {
        let body =
            format!("QA report {i}: the checkout suite passed on build 4{i} with no flakes.");
        qa.send("Backend", &body).await;
        backend.expect_body(&body).await;
    }
    let t = tool(&d).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = compaction_metrics(&t).await;
        if m["counters"]["deferredForSync"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no deferred delivery: {m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    backend.drain(Duration::from_millis(1500)).await;
    assert!(
        backend.contexts.is_empty(),
        "a context was injected during the sync wait"
    );

    // Backend answers: the wait clears and the context follows within a couple of seconds.
    backend
        .client
        .reply_sync(&asked, Some(serde_json::json!({"ok": true})))
        .await
        .expect("reply");
    pending.answer().await.expect("Lead gets the answer");
    let context = backend
        .next_context(Duration::from_secs(5))
        .await
        .expect("the context arrives once the wait has cleared");
    let info = info(&context);
    let (tokens, target) = (info["tokens"].as_u64(), info["targetTokens"].as_u64());
    assert!(tokens.is_some() && tokens <= target, "{info}");
    assert!(
        context.payload.body.contains("QA report"),
        "{}",
        context.payload.body
    );
    let latest = t.context("Backend", false, false).await.expect("CONTEXT");
    let latest = latest.snapshot.expect("a stored snapshot");
    assert_eq!(
        info["snapshotId"],
        latest.id.as_str(),
        "the latest snapshot is delivered"
    );
    let m = compaction_metrics(&t).await;
    assert!(
        m["counters"]["injections"].as_u64().unwrap_or(0) >= 1,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_is_offered_on_reconnect_and_survives_a_restart() {
    let mut d = TestDaemon::start(small_budget()).await;
    let mut lead = Agent::connect(&d, "Lead").await;
    let mut backend = Agent::connect(&d, "Backend").await;
    converse(&d, &mut lead, &mut backend, 60).await;
    backend.drain(Duration::from_millis(500)).await;
    let latest = backend.contexts.last().cloned().expect("a context");
    let snapshot_id = info(&latest)["snapshotId"].clone();

    // A new session is offered the stored snapshot once.
    backend.client.close().await;
    let mut again = Agent::connect(&d, "Backend").await;
    let offered = again
        .next_context(WAIT)
        .await
        .expect("the snapshot is offered on reconnect");
    assert_eq!(info(&offered)["snapshotId"], snapshot_id);
    assert_eq!(offered.payload.body, latest.payload.body);
    again.drain(Duration::from_millis(1200)).await;
    assert_eq!(again.contexts.len(), 1, "offered once per session");
    again.client.close().await;
    lead.client.close().await;

    // It is in the database: after a restart the reconnecting agent gets it again.
    d.restart().await;
    let mut after = Agent::connect(&d, "Backend").await;
    let offered = after
        .next_context(WAIT)
        .await
        .expect("the stored snapshot is offered after a restart");
    assert_eq!(info(&offered)["snapshotId"], snapshot_id);

    // The history was rebuilt from the snapshot and the messages after it.
    let t = tool(&d).await;
    let ctx = t.context("Backend", false, false).await.expect("CONTEXT");
    assert!(ctx.history_messages > 0, "{ctx:?}");
    assert!(ctx.history_tokens > 0, "{ctx:?}");
    let snapshot = ctx.snapshot.expect("snapshot");
    assert_eq!(Value::String(snapshot.id), snapshot_id);
    assert!(snapshot.content.contains("5433"));
    assert!(snapshot.tokens <= snapshot.target_tokens);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_requests_compact_and_inject_on_demand() {
    let mut config = small_budget();
    config.compaction.inject = false;
    let d = TestDaemon::start(config).await;
    let mut lead = Agent::connect(&d, "Lead").await;
    let mut backend = Agent::connect(&d, "Backend").await;
    let t = tool(&d).await;

    // Above the target (1000) but under the threshold (1600): nothing happens by itself.
    let lines = converse(&d, &mut lead, &mut backend, 45).await;
    let before = t.context("Backend", false, false).await.expect("CONTEXT");
    assert!(
        before.history_tokens > 1000 && before.history_tokens <= 1600,
        "{before:?}"
    );
    assert!(!before.needs_compaction);
    assert!(before.snapshot.is_none());
    assert_eq!(before.history_messages as usize, lines.len());
    assert_eq!(
        (
            before.threshold_tokens,
            before.target_tokens,
            before.max_tokens
        ),
        (1600, 1000, 2000)
    );
    assert_eq!(before.tokenizer, "heuristic");

    // inject without a snapshot says how to make one.
    match t.context("Backend", false, true).await {
        Err(ClientError::Server(e)) => {
            assert_eq!(e.code, ErrorCode::BadRequest);
            assert!(e.message.contains("--compact --inject"), "{}", e.message);
        }
        other => panic!("expected BAD_REQUEST, got {other:?}"),
    }

    // compact: down to the target now.
    let compacted = t.context("Backend", true, false).await.expect("compact");
    let result = compacted.result.clone().expect("the compaction report");
    assert_eq!(result.outcome, "reached", "{result:?}");
    assert_eq!(result.trigger, "request");
    assert!(result.final_tokens <= 1000, "{result:?}");
    assert!(!result.steps.is_empty());
    let snapshot = compacted.snapshot.clone().expect("stored snapshot");
    assert_eq!(snapshot.tokens, result.final_tokens);
    assert!(compacted.history_tokens <= 1000, "{compacted:?}");
    assert!(snapshot
        .content
        .contains(&rendered(&lines[lines.len() - 1])));
    backend.drain(Duration::from_millis(300)).await;
    assert!(
        backend.contexts.is_empty(),
        "inject = false: nothing delivered"
    );

    // inject: delivered now.
    let injected: ContextResponsePayload = t.context("Backend", false, true).await.expect("inject");
    assert_eq!(injected.injection.as_deref(), Some("delivered"));
    let context = backend.next_context(WAIT).await.expect("delivered");
    assert_eq!(info(&context)["snapshotId"], snapshot.id.as_str());
    assert_eq!(context.payload.body, snapshot.content);

    // A history already under the target is left alone: no snapshot is made of it.
    let qa = Agent::connect(&d, "QA").await;
    qa.send("Lead", "QA here: smoke tests are green.").await;
    lead.expect_body("QA here: smoke tests are green.").await;
    let small = t.context("QA", true, false).await.expect("compact QA");
    let result = small.result.expect("report");
    assert_eq!(result.outcome, "not_needed");
    assert!(small.snapshot.is_none(), "{:?}", small.snapshot);
    assert_eq!(small.history_messages, 1);
    // ... and a `not_needed` run does not replace the snapshot made when Backend was over it.
    let again = t
        .context("Backend", true, false)
        .await
        .expect("compact again");
    assert_eq!(again.result.expect("report").outcome, "not_needed");
    assert_eq!(again.snapshot.expect("kept").id, snapshot.id);

    // Unknown agents are refused with the reason.
    match t.context("Nobody", false, false).await {
        Err(ClientError::Server(e)) => {
            assert_eq!(e.code, ErrorCode::BadRequest);
            assert!(
                e.message.contains("unknown agent \"Nobody\""),
                "{}",
                e.message
            );
        }
        other => panic!("expected BAD_REQUEST, got {other:?}"),
    }
}

/// Runs a compaction with `command` as the external summariser; returns its report and the
/// stored context text.
async fn report_with_summarizer(command: &str) -> (relay_protocol::CompactionReport, String) {
    let mut config = small_budget();
    config.compaction.inject = false;
    // Summarising first, so that the summariser is what reaches the target.
    config.compaction.strategies = vec!["summarize".into(), "aggressive".into()];
    config.compaction.summarizer.command = command.to_string();
    config.compaction.summarizer.timeout_ms = 5000;
    let d = TestDaemon::start(config).await;
    let mut lead = Agent::connect(&d, "Lead").await;
    let mut backend = Agent::connect(&d, "Backend").await;
    converse(&d, &mut lead, &mut backend, 45).await;
    let t = tool(&d).await;
    let answer = t.context("Backend", true, false).await.expect("compact");
    let report = answer.result.expect("report");
    let content = answer.snapshot.map(|s| s.content).unwrap_or_default();
    (report, content)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_summarizer_is_used_and_the_built_in_one_when_it_fails() {
    let (report, content) = report_with_summarizer(
        "sh -c 'cat >/dev/null; echo \"EXTERNAL-SUMMARY-MARKER: PostgreSQL 15 on port 5433\"'",
    )
    .await;
    assert_eq!(report.summarizer.as_deref(), Some("external"), "{report:?}");
    assert!(content.contains("EXTERNAL-SUMMARY-MARKER"), "{content}");
    assert!(report.final_tokens <= 1000);

    let (report, content) =
        report_with_summarizer("sh -c 'cat >/dev/null; echo broken >&2; exit 1'").await;
    assert_eq!(
        report.summarizer.as_deref(),
        Some("built_in_after_external_failed"),
        "{report:?}"
    );
    let error = report.summarizer_error.clone().unwrap_or_default();
    assert!(
        error.contains("failed") && error.contains("broken"),
        "{error}"
    );
    assert!(!content.contains("EXTERNAL-SUMMARY-MARKER"));
    assert!(content.contains("5433"), "the built-in summary: {content}");
    assert_eq!(report.outcome, "reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_compaction_disabled_context_says_how_to_enable_it() {
    let mut config = fast_config();
    config.limits.rate_limit_enabled = false;
    let d = TestDaemon::start(config).await;
    let mut lead = Agent::connect(&d, "Lead").await;
    let mut backend = Agent::connect(&d, "Backend").await;
    converse(&d, &mut lead, &mut backend, 60).await;
    backend.drain(Duration::from_millis(300)).await;
    assert!(backend.contexts.is_empty());
    let t = tool(&d).await;
    match t.context("Backend", false, false).await {
        Err(ClientError::Server(e)) => {
            assert_eq!(e.code, ErrorCode::BadRequest);
            assert!(
                e.message.contains("compaction is disabled"),
                "{}",
                e.message
            );
            assert!(
                e.message.contains("compaction.enabled=true"),
                "{}",
                e.message
            );
        }
        other => panic!("expected BAD_REQUEST, got {other:?}"),
    }
    // The router has no compaction service to talk to: nothing is recorded or reported.
    let status = t.status().await.expect("STATUS");
    assert!(
        status.extra.get("compaction").is_none(),
        "{:?}",
        status.extra
    );
    assert_eq!(compaction_metrics(&t).await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_compaction_section_stops_the_daemon_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("relay.sock");
    let listener = relay_daemon::prepare_socket(&socket).expect("bind");
    let store = relay_store::Store::open(relay_store::StoreConfig::memory()).expect("store");
    let mut config = small_budget();
    config.compaction.summarizer.command = "summarise 'unclosed".into();
    let result = relay_daemon::run(
        config,
        listener,
        socket,
        store,
        relay_daemon::Subsystems::default(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await;
    let e = result.expect_err("refused").to_string();
    assert!(e.contains("invalid [compaction] configuration"), "{e}");
    assert!(e.contains("summarizer.command"), "{e}");
}

/// With a one-message queue to the compaction service, a burst of sends overflows it: the
/// dropped messages are counted, and once the service has caught up it rebuilds the histories
/// from storage, so they hold the whole conversation after all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_dropped_under_load_are_repaired_from_storage() {
    let mut config = small_budget();
    config.compaction.max_tokens = 1_000_000;
    config.compaction.queue_events = 1;
    let d = TestDaemon::start(config).await;
    let lead = Agent::connect(&d, "Lead").await;
    let mut backend = Agent::connect(&d, "Backend").await;
    let t = tool(&d).await;

    // One message on its own fits the queue: the service holds both histories from then on.
    lead.send("Backend", "warm-up").await;
    backend.expect_body("warm-up").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while t
        .context("Backend", false, false)
        .await
        .expect("CONTEXT")
        .history_messages
        != 1
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the warm-up was recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    const BURST: usize = 300;
    for i in 1..BURST {
        lead.send("Backend", &format!("burst message {i}")).await;
    }
    backend
        .expect_body(&format!("burst message {}", BURST - 1))
        .await;

    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        let c = t.context("Backend", false, false).await.expect("CONTEXT");
        if c.history_messages as usize == BURST {
            last = Some(c);
            break;
        }
        last = Some(c);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = compaction_metrics(&t).await;
    let dropped = m["counters"]["droppedEvents"].as_u64().unwrap_or(0);
    assert!(dropped > 0, "the burst overflowed the queue: {m}");
    assert!(
        m["counters"]["historiesRepaired"].as_u64().unwrap_or(0) >= 1,
        "{m}"
    );
    let c = last.expect("CONTEXT answered");
    assert_eq!(
        c.history_messages as usize, BURST,
        "Backend's history holds every message again ({dropped} were dropped): {c:?}"
    );
    let lead_history = t.context("Lead", false, false).await.expect("CONTEXT");
    assert_eq!(lead_history.history_messages as usize, BURST);
}
