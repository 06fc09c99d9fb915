//! The compaction task: histories, lazy rebuilds, compactions in spawned tasks, snapshots.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relay_compaction::{
    AgentHistory, CompactionConfig, CompactionOutcome, CompactionResult, Compactor, HistoryMark,
    HistoryMessage, SummarizerUsed,
};
use relay_store::{ContextSnapshot, StoreHandle, StoredMessage, WriteOp};
use tokio::sync::mpsc;

use super::report::{self, Trigger};
use super::{
    CompactionCommand, CompactionCounters, CompactionStatus, ContextDelivery, ContextRequest,
    EventFields, QueueGauge,
};
use crate::router::RouterMsg;

/// Stored rows and routed messages of the same message may carry times a little apart.
const REBUILD_SLACK_MS: u64 = 1000;

/// How far before an agent's recorded first registration its rebuild still looks for messages
/// (clock steps, and the registry's once-a-second flush).
const REGISTRY_SLACK_MS: i64 = 60_000;

/// How long shutdown waits for compactions still running, so that their snapshots are stored.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// What the service's own tasks report back.
pub(super) enum Internal {
    Loaded {
        agent: String,
        loaded: Result<Loaded, String>,
    },
    SnapshotLoaded {
        agent: String,
        snapshot: Result<Option<ContextSnapshot>, String>,
    },
    Compacted(Box<Compacted>),
}

pub(super) struct Loaded {
    snapshot: Option<ContextSnapshot>,
    rows: Vec<StoredMessage>,
}

pub(super) struct Compacted {
    agent: String,
    mark: HistoryMark,
    covered_until: u64,
    trigger: Trigger,
    result: CompactionResult,
}

/// One agent, as the service knows it.
#[derive(Default)]
pub(super) struct AgentState {
    /// `None` until rebuilt from storage.
    pub(super) history: Option<AgentHistory>,
    loading: bool,
    /// When the rebuild started (epoch ms).
    load_started: u64,
    /// Messages routed while the history was being rebuilt.
    pending: Vec<HistoryMessage>,
    /// Ids of rebuilt messages whose routing the service may still hear about (routed after the
    /// rebuild began): skipped once when they arrive.
    rebuilt: HashSet<String>,
    /// Requests waiting for the rebuild.
    pub(super) requests: Vec<ContextRequest>,
    pub(super) compacting: bool,
    /// `compact:true` requests answered when the running compaction ends.
    pub(super) compact_waiters: Vec<ContextRequest>,
    /// The stored snapshot: `None` = not looked up yet, `Some(None)` = there is none.
    pub(super) snapshot: Option<Option<ContextSnapshot>>,
    snapshot_loading: bool,
    /// Sessions to offer the snapshot to once it is known.
    offers: Vec<String>,
    /// After a compaction that could not reach the target, the threshold fires again only
    /// once the history has grown by as much as a compaction frees.
    retrigger_at: usize,
}

pub struct CompactionService {
    pub(super) compactor: Compactor,
    /// The same configuration with the trigger at the target: `CONTEXT{compact:true}` compacts
    /// any history above the target.
    forced: Compactor,
    pub(super) config: CompactionConfig,
    inject: bool,
    store: StoreHandle,
    pub(super) router_tx: mpsc::Sender<RouterMsg>,
    rx: mpsc::Receiver<CompactionCommand>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
    pub(super) agents: HashMap<String, AgentState>,
    status: Arc<Mutex<CompactionStatus>>,
    /// Events queued and dropped by the router.
    gauge: Arc<QueueGauge>,
    /// The drops already answered by a repair (or being answered).
    repaired_through: u64,
    counters: CompactionCounters,
    last_compaction_ms: u64,
}

impl CompactionService {
    pub(super) fn new(
        config: CompactionConfig,
        inject: bool,
        store: StoreHandle,
        router_tx: mpsc::Sender<RouterMsg>,
        rx: mpsc::Receiver<CompactionCommand>,
        status: Arc<Mutex<CompactionStatus>>,
        gauge: Arc<QueueGauge>,
    ) -> Result<CompactionService, String> {
        let compactor = Compactor::new(config.clone()).map_err(|e| e.to_string())?;
        let forced_config = CompactionConfig {
            threshold: config.target_usage.next_up().min(1.0),
            ..config.clone()
        };
        let forced = Compactor::with_counter(forced_config, compactor.counter().clone())
            .map_err(|e| e.to_string())?;
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        Ok(CompactionService {
            compactor,
            forced,
            config,
            inject,
            store,
            router_tx,
            rx,
            internal_tx,
            internal_rx,
            agents: HashMap::new(),
            status,
            gauge,
            repaired_through: 0,
            counters: CompactionCounters::default(),
            last_compaction_ms: 0,
        })
    }

    /// Runs until the router is gone (its handle dropped), then waits a little for compactions
    /// still running.
    pub async fn run(mut self) {
        // Building the BPE tokenizer takes a moment: not on the first message.
        let counter = self.compactor.counter().clone();
        let _ = tokio::task::spawn_blocking(move || counter.preload()).await;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(64);
        loop {
            tokio::select! {
                n = self.rx.recv_many(&mut batch, 64) => {
                    if n == 0 {
                        break;
                    }
                    for cmd in batch.drain(..) {
                        self.handle(cmd).await;
                    }
                    self.repair_when_caught_up();
                    self.publish();
                }
                Some(msg) = self.internal_rx.recv() => {
                    self.internal(msg).await;
                    self.publish();
                }
                _ = tick.tick() => {
                    self.repair_when_caught_up();
                    self.publish();
                }
            }
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_WAIT;
        while self.agents.values().any(|s| s.compacting) {
            match tokio::time::timeout_at(deadline, self.internal_rx.recv()).await {
                Ok(Some(msg @ Internal::Compacted(_))) => self.internal(msg).await,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        self.publish();
    }

    async fn handle(&mut self, cmd: CompactionCommand) {
        match cmd {
            CompactionCommand::Events(batch) => {
                for (fields, participants) in batch.iter() {
                    self.on_event(fields, &participants);
                }
                self.gauge.queued.fetch_sub(batch.len(), Ordering::Relaxed);
            }
            CompactionCommand::AgentOnline { agent, session_id } => {
                self.on_agent_online(agent, session_id).await
            }
            CompactionCommand::Request(req) => self.on_request(*req).await,
            CompactionCommand::Forget { agent } => {
                self.agents.remove(&agent);
            }
        }
    }

    async fn internal(&mut self, msg: Internal) {
        match msg {
            Internal::Loaded { agent, loaded } => self.on_loaded(agent, loaded).await,
            Internal::SnapshotLoaded { agent, snapshot } => {
                let Some(state) = self.agents.get_mut(&agent) else {
                    return;
                };
                state.snapshot_loading = false;
                match snapshot {
                    Ok(s) => {
                        if state.snapshot.is_none() {
                            state.snapshot = Some(s);
                        }
                    }
                    Err(e) => {
                        self.counters.store_errors += 1;
                        tracing::error!(%agent, "cannot read the stored context snapshot: {e}");
                    }
                }
                self.send_offers(&agent).await;
            }
            Internal::Compacted(done) => self.on_compacted(*done).await,
        }
    }

    /// After the router dropped routed messages (its queue to the service was full), and once
    /// everything queued has been processed, rebuilds the histories held in memory from storage
    /// so that what was dropped is in them again. A history being compacted or rebuilt is
    /// repaired on a later pass.
    fn repair_when_caught_up(&mut self) {
        let dropped = self.gauge.dropped.load(Ordering::Relaxed);
        if dropped == self.repaired_through
            || self.gauge.queued.load(Ordering::Relaxed) > 0
            || !self.rx.is_empty()
        {
            return;
        }
        if self.agents.values().any(|s| s.compacting || s.loading) {
            return;
        }
        self.repaired_through = dropped;
        let agents: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, s)| s.history.is_some())
            .map(|(name, _)| name.clone())
            .collect();
        tracing::info!(
            histories = agents.len(),
            dropped,
            "rebuilding agent histories from storage after routed messages were dropped"
        );
        for agent in agents {
            if let Some(state) = self.agents.get_mut(&agent) {
                state.history = None;
                state.rebuilt.clear();
                state.retrigger_at = 0;
                self.counters.histories_repaired += 1;
            }
            self.load(&agent);
        }
    }

    /// Makes sure `agent` has a state, and starts rebuilding its history if it has none yet.
    pub(super) fn ensure(&mut self, agent: &str) {
        let needs_load = match self.agents.get(agent) {
            Some(s) => s.history.is_none() && !s.loading,
            None => {
                self.agents.insert(agent.to_string(), AgentState::default());
                true
            }
        };
        if needs_load {
            self.load(agent);
        }
    }

    /// Rebuilds `agent`'s history in a task: its stored snapshot, then what it sent or received
    /// since (newest `max_history` messages) up to now. Messages routed from now on reach the
    /// service as events, so the query leaves them out: under load the storage thread would
    /// otherwise read back thousands of rows the service is about to hear about anyway.
    fn load(&mut self, agent: &str) {
        let started = relay_protocol::now_ms();
        if let Some(state) = self.agents.get_mut(agent) {
            state.loading = true;
            state.load_started = started;
        }
        let until = i64::try_from(started).ok();
        let store = self.store.clone();
        let tx = self.internal_tx.clone();
        let limit = self.config.max_history;
        let agent = agent.to_string();
        tokio::spawn(async move {
            let loaded = async {
                let snapshot = store.context_snapshot(agent.clone()).await?;
                let channels: Vec<String> = store
                    .channel_memberships()
                    .await?
                    .into_iter()
                    .filter(|m| m.member.eq_ignore_ascii_case(&agent))
                    .map(|m| m.channel)
                    .collect();
                // Nothing involving the agent is older than its first registration (the
                // registry is written within a second of it; an agent not found there yet is
                // new). Bounding the query by time keeps it an index search in a large
                // database instead of a scan back to its oldest row.
                let first_seen = store
                    .agents()
                    .await?
                    .into_iter()
                    .find(|a| a.name == agent)
                    .map(|a| a.first_seen)
                    .unwrap_or(i64::try_from(started).unwrap_or(i64::MAX));
                let registered = first_seen.saturating_sub(REGISTRY_SLACK_MS);
                let since = Some(match snapshot.as_ref() {
                    Some(s) => s.covered_until.max(registered),
                    None => registered,
                });
                let rows = store
                    .conversation(agent.clone(), channels, since, until, limit)
                    .await?;
                Ok::<_, relay_store::StoreError>(Loaded { snapshot, rows })
            }
            .await
            .map_err(|e| e.to_string());
            let _ = tx.send(Internal::Loaded { agent, loaded });
        });
    }

    async fn on_loaded(&mut self, agent: String, loaded: Result<Loaded, String>) {
        let mut history = self.compactor.new_history(agent.clone());
        let mut seen: HashSet<String> = HashSet::new();
        let mut snapshot = None;
        match loaded {
            Ok(Loaded { snapshot: s, rows }) => {
                if let Some(s) = &s {
                    for m in report::messages_of(s) {
                        seen.insert(m.id.clone());
                        history.push(m);
                    }
                }
                for row in &rows {
                    // Rows of one broadcast share the SEND id; the daemon's own context
                    // messages are not part of the conversation.
                    if row.from == "_system" || !seen.insert(report::history_id(row).to_string()) {
                        continue;
                    }
                    history.push(report::from_row(row));
                }
                snapshot = Some(s);
                self.counters.histories_loaded += 1;
            }
            Err(e) => {
                self.counters.store_errors += 1;
                tracing::error!(%agent, "cannot rebuild the agent's history from storage: {e}; starting an empty one");
            }
        }
        let Some(state) = self.agents.get_mut(&agent) else {
            return;
        };
        let pending = std::mem::take(&mut state.pending);
        // Storage already held messages whose routing the service has not heard about yet
        // (they were routed while the rebuild ran): those are skipped when they arrive.
        let since = state.load_started.saturating_sub(REBUILD_SLACK_MS);
        let heard: HashSet<&str> = pending.iter().map(|m| m.id.as_str()).collect();
        state.rebuilt = history
            .messages()
            .filter(|m| m.timestamp_ms >= since && !heard.contains(m.id.as_str()))
            .map(|m| m.id.clone())
            .collect();
        for m in pending {
            if seen.insert(m.id.clone()) {
                history.push(m);
            }
        }
        state.loading = false;
        state.history = Some(history);
        if state.snapshot.is_none() {
            state.snapshot = snapshot;
        }
        tracing::debug!(%agent, "agent history rebuilt");
        self.send_offers(&agent).await;
        let requests = self
            .agents
            .get_mut(&agent)
            .map(|s| std::mem::take(&mut s.requests))
            .unwrap_or_default();
        for req in requests {
            self.serve(req).await;
        }
        self.check(&agent);
    }

    fn on_event(&mut self, event: EventFields<'_>, participants: &[&str]) {
        self.counters.events += 1;
        let mut first = report::from_event(&event);
        // Counted once here; the participants' copies carry the count.
        first.recount(self.compactor.counter());
        let mut message = Some(first);
        let last = participants.len().saturating_sub(1);
        for (i, agent) in participants.iter().enumerate() {
            self.ensure(agent);
            let Some(state) = self.agents.get_mut(*agent) else {
                continue;
            };
            // The last participant gets the message itself, the others a copy.
            let Some(m) = (if i == last {
                message.take()
            } else {
                message.clone()
            }) else {
                continue;
            };
            match state.history.as_mut() {
                Some(_) if !state.rebuilt.is_empty() && state.rebuilt.remove(&m.id) => {}
                Some(history) => {
                    history.push(m);
                }
                None => state.pending.push(m),
            }
            self.check(agent);
        }
    }

    /// Starts a compaction of `agent` if its history is over the threshold.
    fn check(&mut self, agent: &str) {
        let Some(state) = self.agents.get(agent) else {
            return;
        };
        let Some(history) = state.history.as_ref() else {
            return;
        };
        if !state.compacting
            && self.compactor.needs_compaction(history)
            && history.total_tokens() >= state.retrigger_at
        {
            self.start(agent, Trigger::Threshold);
        }
    }

    /// Compacts a copy of `agent`'s history in a task (the history keeps taking messages).
    pub(super) fn start(&mut self, agent: &str, trigger: Trigger) {
        let Some(state) = self.agents.get_mut(agent) else {
            return;
        };
        let Some(history) = state.history.as_ref() else {
            return;
        };
        state.compacting = true;
        let mark = history.mark();
        let messages = history.to_vec();
        let covered_until = messages.iter().map(|m| m.timestamp_ms).max().unwrap_or(0);
        let compactor = match trigger {
            Trigger::Threshold => self.compactor.clone(),
            Trigger::Request => self.forced.clone(),
        };
        let tx = self.internal_tx.clone();
        let agent = agent.to_string();
        tokio::spawn(async move {
            let result = compactor.compact(&messages).await;
            let _ = tx.send(Internal::Compacted(Box::new(Compacted {
                agent,
                mark,
                covered_until,
                trigger,
                result,
            })));
        });
    }

    async fn on_compacted(&mut self, done: Compacted) {
        let Compacted {
            agent,
            mark,
            covered_until,
            trigger,
            result,
        } = done;
        let gap = self
            .config
            .threshold_tokens()
            .saturating_sub(self.config.target_tokens());
        let snapshot = report::snapshot_of(&agent, &result, covered_until, trigger);
        self.counters.compactions += 1;
        self.last_compaction_ms = u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX);
        if matches!(result.outcome, CompactionOutcome::CannotReachTarget { .. }) {
            self.counters.cannot_reach_target += 1;
            tracing::warn!(%agent, outcome = ?result.outcome, "compaction could not reach the target");
        }
        if matches!(
            result.summarizer_used,
            Some(SummarizerUsed::BuiltInAfterExternalFailed { .. })
        ) {
            self.counters.summarizer_fallbacks += 1;
        }
        // An agent removed while its compaction ran stays removed: nothing is stored for it.
        let Some(state) = self.agents.get_mut(&agent) else {
            return;
        };
        state.compacting = false;
        state.retrigger_at = match result.outcome {
            CompactionOutcome::CannotReachTarget { final_tokens, .. } => final_tokens + gap,
            _ => 0,
        };
        let report = report::report_of(&result, trigger);
        let waiters = std::mem::take(&mut state.compact_waiters);
        // A history already within the target is left as it is, and so is the snapshot made
        // when it last was over it: a `not_needed` run has nothing better to offer.
        if result.outcome != CompactionOutcome::NotNeeded {
            if let Some(history) = state.history.as_mut() {
                history.replace_compacted(mark, result.messages);
            }
            state.snapshot = Some(Some(snapshot.clone()));
            match self
                .store
                .write(WriteOp::PutContextSnapshot(snapshot.clone()))
            {
                Ok(()) => self.counters.snapshots_stored += 1,
                Err(e) => {
                    self.counters.store_errors += 1;
                    tracing::error!(%agent, "cannot store the context snapshot: {e}");
                }
            }
            tracing::info!(
                %agent,
                tokens = snapshot.tokens,
                original_tokens = snapshot.original_tokens,
                outcome = %snapshot.outcome,
                trigger = ?trigger,
                "context snapshot stored"
            );
            if trigger == Trigger::Threshold && self.inject {
                self.deliver(&snapshot, None, None).await;
            }
        }
        for req in waiters {
            self.respond(req, Some(report.clone())).await;
        }
        self.check(&agent);
    }

    async fn on_agent_online(&mut self, agent: String, session_id: String) {
        let state = self.agents.entry(agent.clone()).or_default();
        state.offers.push(session_id);
        match &state.snapshot {
            Some(_) => self.send_offers(&agent).await,
            None if state.loading || state.snapshot_loading => {}
            None => {
                state.snapshot_loading = true;
                let store = self.store.clone();
                let tx = self.internal_tx.clone();
                tokio::spawn(async move {
                    let snapshot = store
                        .context_snapshot(agent.clone())
                        .await
                        .map_err(|e| e.to_string());
                    let _ = tx.send(Internal::SnapshotLoaded { agent, snapshot });
                });
            }
        }
    }

    /// Offers the stored snapshot to the sessions that connected while it was looked up.
    async fn send_offers(&mut self, agent: &str) {
        let Some(state) = self.agents.get_mut(agent) else {
            return;
        };
        let offers = std::mem::take(&mut state.offers);
        let Some(Some(snapshot)) = state.snapshot.clone() else {
            return;
        };
        for session in offers {
            self.deliver(&snapshot, Some(session), None).await;
        }
    }

    /// Hands a snapshot to the router for delivery.
    pub(super) async fn deliver(
        &self,
        snapshot: &ContextSnapshot,
        session: Option<String>,
        reply: Option<super::ContextReply>,
    ) {
        let delivery = ContextDelivery {
            agent: snapshot.agent.clone(),
            snapshot_id: snapshot.id.clone(),
            body: snapshot.content.clone(),
            info: report::delivery_info(snapshot),
            session,
            reply,
        };
        let _ = self
            .router_tx
            .send(RouterMsg::Context(Box::new(delivery)))
            .await;
    }

    fn publish(&self) {
        if let Ok(mut s) = self.status.lock() {
            s.histories = self.agents.values().filter(|a| a.history.is_some()).count();
            s.compacting = self.agents.values().filter(|a| a.compacting).count();
            s.last_compaction_ms = self.last_compaction_ms;
            s.counters = self.counters.clone();
        }
    }
}
