//! Queries (STATUS, INBOX, MESSAGES_QUERY, LIST_AGENTS, …), WATCH and LOG.
//!
//! Queries answered from router state reply at once; queries that read storage run in a spawned
//! task and answer the client directly, so the router never waits on the database.

use relay_protocol::{
    AgentInfo, AgentMetrics, EntityType, Envelope, ErrorCode, HealthIssue, HealthResponsePayload,
    HealthStats, InboxMessage, InboxPayload, InboxResponsePayload, ListAgentsResponsePayload,
    LogPayload, MessageGetPayload, MessageGetResponsePayload, MessageRecord, MessageType,
    MessagesQueryPayload, MessagesResponsePayload, MetricsResponsePayload, RemoveAgentPayload,
    RemoveAgentResponsePayload, SendPayload, SortOrder, StatusResponsePayload, StorageStatus,
    SystemMetrics, WatchEventPayload, WatchPayload,
};
use relay_store::{MessageQuery, MessageStatus, Order, StoredMessage, WriteOp};
use serde::Serialize;

use super::Router;
use crate::connection::{error_frame, frame_of, Outbound};

const DEFAULT_QUERY_LIMIT: usize = 100;
const MAX_QUERY_LIMIT: usize = 10_000;

/// A stored row as returned to clients.
pub(crate) fn record_of(m: &StoredMessage) -> MessageRecord {
    let channel = m.is_channel().then(|| m.to.clone());
    MessageRecord {
        id: m.id.clone(),
        from: m.from.clone(),
        to: m.to.clone(),
        body: m.body.clone(),
        channel,
        thread: m.thread.clone(),
        timestamp: m.ts.max(0) as u64,
        status: Some(m.status.as_str().to_string()),
        is_broadcast: Some(m.is_broadcast),
        reply_count: None,
        data: m.data.as_ref().and_then(|d| d.as_object().cloned()),
        kind: Some(m.kind.clone()),
        topic: m.topic.clone(),
        original_to: m.original_to.clone(),
        attempts: Some(m.attempts.max(0) as u64),
    }
}

impl Router {
    pub(crate) fn on_query(&mut self, conn_id: u64, env: Envelope) {
        let Some(resp_type) = env.msg_type.response_type() else {
            return;
        };
        let id = env.id.clone();
        macro_rules! parse {
            ($t:ty) => {
                match env.payload_as::<$t>() {
                    Ok(p) => p,
                    Err(e) => {
                        return self.reply_error(
                            conn_id,
                            ErrorCode::BadRequest,
                            format!("invalid {} payload: {e}", env.msg_type),
                            &id,
                        )
                    }
                }
            };
        }
        match env.msg_type {
            MessageType::Status => {
                let payload = self.status_payload();
                self.respond(conn_id, resp_type, &id, &payload);
            }
            MessageType::ListAgents => {
                let agents = self.agent_infos(false);
                self.respond(
                    conn_id,
                    resp_type,
                    &id,
                    &ListAgentsResponsePayload { agents },
                );
            }
            MessageType::ListConnectedAgents => {
                let agents = self.agent_infos(true);
                self.respond(
                    conn_id,
                    resp_type,
                    &id,
                    &ListAgentsResponsePayload { agents },
                );
            }
            MessageType::Health => {
                let payload = self.health_payload();
                self.respond(conn_id, resp_type, &id, &payload);
            }
            MessageType::Metrics => {
                let payload = self.metrics_payload();
                self.respond(conn_id, resp_type, &id, &payload);
            }
            MessageType::RemoveAgent => {
                let p = parse!(RemoveAgentPayload);
                let payload = self.remove_agent(&p);
                self.respond(conn_id, resp_type, &id, &payload);
            }
            MessageType::Inbox => {
                let p = parse!(InboxPayload);
                let agent = if p.agent.is_empty() {
                    self.conn_name(conn_id).unwrap_or_default().to_string()
                } else {
                    p.agent.clone()
                };
                let q = MessageQuery {
                    limit: Some(p.limit.unwrap_or(DEFAULT_QUERY_LIMIT).min(MAX_QUERY_LIMIT)),
                    from: p.from.clone(),
                    to: Some(p.channel.clone().unwrap_or(agent)),
                    statuses: p
                        .unread_only
                        .unwrap_or(false)
                        .then(|| vec![MessageStatus::Unread, MessageStatus::Read]),
                    order: Order::Desc,
                    include_channel: true,
                    ..Default::default()
                };
                self.spawn_store_query(conn_id, resp_type, id, move |store| async move {
                    let rows = store.messages(q).await?;
                    let messages = rows
                        .iter()
                        .map(|m| InboxMessage {
                            id: m.id.clone(),
                            from: m.from.clone(),
                            body: m.body.clone(),
                            channel: m.is_channel().then(|| m.to.clone()),
                            thread: m.thread.clone(),
                            timestamp: m.ts.max(0) as u64,
                        })
                        .collect();
                    Ok(serde_json::to_value(InboxResponsePayload { messages }).unwrap_or_default())
                });
            }
            MessageType::MessagesQuery => {
                let p = parse!(MessagesQueryPayload);
                let q = MessageQuery {
                    limit: Some(p.limit.unwrap_or(DEFAULT_QUERY_LIMIT).min(MAX_QUERY_LIMIT)),
                    since_ts: p.since_ts.map(|t| t as i64),
                    from: p.from.clone(),
                    to: p.to.clone(),
                    thread: p.thread.clone(),
                    order: if p.order == Some(SortOrder::Asc) {
                        Order::Asc
                    } else {
                        Order::Desc
                    },
                    include_channel: p.include_channels.unwrap_or(true),
                    ..Default::default()
                };
                self.spawn_store_query(conn_id, resp_type, id, move |store| async move {
                    let rows = store.messages(q).await?;
                    let messages = rows.iter().map(record_of).collect();
                    Ok(serde_json::to_value(MessagesResponsePayload { messages })
                        .unwrap_or_default())
                });
            }
            MessageType::MessageGet => {
                let p = parse!(MessageGetPayload);
                self.spawn_store_query(conn_id, resp_type, id, move |store| async move {
                    let payload = match store.message_by_id_prefix(p.id.clone()).await {
                        Ok(Some(m)) => MessageGetResponsePayload { message: Some(record_of(&m)), error: None },
                        Ok(None) => MessageGetResponsePayload { message: None, error: Some(format!("no message with id or id prefix {:?}", p.id)) },
                        Err(relay_store::StoreError::AmbiguousId { prefix, count }) => MessageGetResponsePayload {
                            message: None,
                            error: Some(format!("id prefix {prefix:?} matches {count} messages; give more characters")),
                        },
                        Err(e) => return Err(e),
                    };
                    Ok(serde_json::to_value(payload).unwrap_or_default())
                });
            }
            _ => {}
        }
    }

    fn respond<T: Serialize>(
        &mut self,
        conn_id: u64,
        resp_type: MessageType,
        id: &str,
        payload: &T,
    ) {
        let env = Envelope::new(resp_type, payload).id(id);
        self.reply(conn_id, &env);
    }

    fn spawn_store_query<F, Fut>(
        &mut self,
        conn_id: u64,
        resp_type: MessageType,
        id: String,
        run: F,
    ) where
        F: FnOnce(relay_store::StoreHandle) -> Fut + Send + 'static,
        Fut:
            std::future::Future<Output = Result<serde_json::Value, relay_store::StoreError>> + Send,
    {
        let Some(outlet) = self.conns.get(&conn_id).map(|c| c.outlet.clone()) else {
            return;
        };
        let store = self.shared.store.clone();
        self.counters.queries += 1;
        tokio::spawn(async move {
            let frame = match run(store).await {
                Ok(payload) => frame_of(&Envelope::new(resp_type, &payload).id(id), usize::MAX),
                Err(e) => error_frame(
                    ErrorCode::Internal,
                    format!("storage query failed: {e}"),
                    false,
                    Some(&id),
                ),
            };
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                outlet.tx.send(Outbound::Frame(frame)),
            )
            .await;
        });
    }

    fn status_payload(&self) -> StatusResponsePayload {
        let m = self.shared.store.metrics();
        let mut extra = serde_json::Map::new();
        extra.insert("pid".into(), std::process::id().into());
        extra.insert(
            "socket".into(),
            self.shared.socket_path.display().to_string().into(),
        );
        extra.insert("connections".into(), self.conns.len().into());
        extra.insert("pendingDeliveries".into(), self.tracker.len().into());
        extra.insert("syncWaits".into(), self.syncs.len().into());
        extra.insert("channels".into(), self.channels.channel_count().into());
        extra.insert(
            "rssBytes".into(),
            crate::sysinfo::rss_bytes(None).unwrap_or(0).into(),
        );
        if let Some(cpu) = crate::sysinfo::cpu_time() {
            extra.insert("cpuTimeUs".into(), (cpu.as_micros() as u64).into());
        }
        extra.insert("storeQueueDepth".into(), m.queue_depth.into());
        extra.insert("storeCpuTimeUs".into(), m.writer_cpu_us.into());
        if let Some(dlq) = &self.dlq {
            extra.insert(
                "dlq".into(),
                serde_json::to_value(dlq.snapshot()).unwrap_or_default(),
            );
        }
        if let Some(link) = &self.compaction {
            extra.insert(
                "compaction".into(),
                serde_json::to_value(link.handle.snapshot()).unwrap_or_default(),
            );
        }
        StatusResponsePayload {
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
            uptime: Some(self.shared.started.elapsed().as_millis() as u64),
            cloud_connected: Some(false),
            agent_count: Some(
                self.conns
                    .values()
                    .filter(|c| !c.system && c.entity == EntityType::Agent)
                    .count() as u64,
            ),
            storage: Some(StorageStatus {
                persistent: m.persistent,
                driver: m.backend_name.to_string(),
                can_write: m.can_write,
                can_read: true,
                error: m.last_error.clone(),
            }),
            extra,
        }
    }

    fn agent_infos(&self, connected_only: bool) -> Vec<AgentInfo> {
        let mut out: Vec<AgentInfo> = self
            .registry
            .values()
            .filter(|r| !connected_only || self.by_name.contains_key(&r.name))
            .map(|r| {
                let conn = self.by_name.get(&r.name).and_then(|id| self.conns.get(id));
                let worker = self.worker_info(&r.name);
                AgentInfo {
                    name: r.name.clone(),
                    cli: worker
                        .map(|w| w.1.to_string())
                        .or_else(|| conn.and_then(|c| c.cli.clone()))
                        .or_else(|| r.cli.clone()),
                    idle: Some(conn.is_none() || self.tracker.count_for(&r.name) == 0),
                    parent: worker.map(|w| w.3.to_string()),
                    status: Some(
                        worker
                            .map(|w| w.2)
                            .unwrap_or(if conn.is_some() { "online" } else { "offline" })
                            .to_string(),
                    ),
                    task: conn.and_then(|c| c.task.clone()).or_else(|| r.task.clone()),
                    team: conn.and_then(|c| c.team.clone()).or_else(|| r.team.clone()),
                    pid: worker
                        .and_then(|w| w.0)
                        .or_else(|| conn.and_then(|c| c.pid)),
                    connected_at: conn.map(|c| c.connected_at),
                    entity_type: Some(if r.entity_type == "user" {
                        EntityType::User
                    } else {
                        EntityType::Agent
                    }),
                    online: Some(conn.is_some()),
                    first_seen: Some(r.first_seen.max(0) as u64),
                    last_seen: Some(r.last_seen.max(0) as u64),
                    messages_sent: Some(r.messages_sent.max(0) as u64),
                    messages_received: Some(r.messages_received.max(0) as u64),
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn remove_agent(&mut self, p: &RemoveAgentPayload) -> RemoveAgentResponsePayload {
        if self.by_name.contains_key(&p.name) {
            return RemoveAgentResponsePayload {
                success: false,
                removed: false,
                message: Some(format!(
                    "{} is connected; disconnect it before removing it",
                    p.name
                )),
            };
        }
        if self.registry.remove(&p.name).is_none() {
            return RemoveAgentResponsePayload {
                success: true,
                removed: false,
                message: Some(format!("no agent named {}", p.name)),
            };
        }
        self.channels.remove_member_everywhere(&p.name);
        self.forget_context(&p.name);
        let remove_messages = p.remove_messages.unwrap_or(false);
        if !remove_messages {
            // Messages still waiting for it can never be delivered now: dead-letter them.
            let store = self.shared.store.clone();
            let tx = self.shared.router_tx.clone();
            let name = p.name.clone();
            tokio::spawn(async move {
                if let Ok(rows) = store.pending_for(name.clone()).await {
                    if !rows.is_empty() {
                        let error = format!("recipient {name} was removed");
                        let reason = crate::failure::FailureReason::ConnectionLost;
                        let _ = tx
                            .send(super::RouterMsg::Undeliverable {
                                rows,
                                reason,
                                error,
                            })
                            .await;
                    }
                }
            });
        }
        self.store_write(WriteOp::RemoveAgent {
            name: p.name.clone(),
            remove_messages,
            replayable: crate::signing::replayable_now(&self.shared.config.signing),
        });
        RemoveAgentResponsePayload {
            success: true,
            removed: true,
            message: Some(if remove_messages {
                format!("removed {} and its messages", p.name)
            } else {
                format!("removed {}", p.name)
            }),
        }
    }

    fn health_payload(&self) -> HealthResponsePayload {
        let mut issues = Vec::new();
        let mut recommendations = Vec::new();
        let mut score: i64 = 100;
        let m = self.shared.store.metrics();
        if !m.can_write {
            score -= 50;
            issues.push(HealthIssue {
                severity: "critical".into(),
                message: format!(
                    "storage cannot write: {}",
                    m.last_error.clone().unwrap_or_default()
                ),
            });
            recommendations.push("check disk space and permissions of the database file".into());
        }
        if m.lost_ops > 0 {
            score -= 20;
            issues.push(HealthIssue {
                severity: "high".into(),
                message: format!("{} storage writes were lost after retries", m.lost_ops),
            });
        }
        let congested = self
            .conns
            .values()
            .filter(|c| !c.overflow.is_empty())
            .count();
        if congested > 0 {
            score -= 10;
            issues.push(HealthIssue {
                severity: "medium".into(),
                message: format!("{congested} connection(s) are not reading fast enough"),
            });
            recommendations.push(
                "slow consumers receive messages late; check that agents ACK what they receive"
                    .into(),
            );
        }
        if self.counters.failed > 0 {
            score -= 10;
            issues.push(HealthIssue {
                severity: "medium".into(),
                message: format!("{} deliveries failed after retries", self.counters.failed),
            });
            recommendations.push("see `agent-relay history` for failed messages".into());
        }
        if let Some(dlq) = self.dlq.as_ref().map(|d| d.snapshot()) {
            if dlq.checking_spool {
                issues.push(HealthIssue {
                    severity: "low".into(),
                    message: format!(
                        "dead letter store ({}) starting: checking the local spool for letters \
                         kept by an earlier run",
                        dlq.backend
                    ),
                });
            } else if dlq.degraded {
                score -= 20;
                issues.push(HealthIssue {
                    severity: "high".into(),
                    message: format!(
                        "dead letter store ({}) unreachable: {} letters kept locally until it returns ({})",
                        dlq.backend,
                        dlq.spooled,
                        dlq.last_error.clone().unwrap_or_default()
                    ),
                });
                recommendations.push("check the [dlq] url and that PostgreSQL is running".into());
            }
            if dlq.alerting {
                score -= 10;
                issues.push(HealthIssue {
                    severity: "medium".into(),
                    message: format!(
                        "{} undelivered messages in the dead letter queue",
                        dlq.unacknowledged
                    ),
                });
                recommendations.push(
                    "inspect them with `agent-relay dlq list`; replay or acknowledge them".into(),
                );
            }
        }
        let score = score.clamp(0, 100) as u32;
        HealthResponsePayload {
            health_score: score,
            summary: if issues.is_empty() {
                "healthy".into()
            } else {
                format!("{} issue(s)", issues.len())
            },
            issues,
            recommendations,
            crashes: Vec::new(),
            alerts: Vec::new(),
            stats: HealthStats {
                total_crashes24h: 0,
                total_alerts24h: 0,
                agent_count: self.conns.len() as u64,
            },
        }
    }

    fn metrics_payload(&self) -> MetricsResponsePayload {
        let now = relay_protocol::now_ms();
        let agents = self
            .conns
            .values()
            .map(|c| AgentMetrics {
                name: c.name.clone(),
                pid: c.pid,
                status: "online".into(),
                rss_bytes: crate::sysinfo::rss_bytes(c.pid),
                uptime_ms: Some(now.saturating_sub(c.connected_at)),
                ..Default::default()
            })
            .collect();
        let (total, free) = crate::sysinfo::memory();
        let mut daemon = serde_json::to_value(&self.counters)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        daemon.insert("pendingDeliveries".into(), self.tracker.len().into());
        daemon.insert("connections".into(), self.conns.len().into());
        if let Some(dlq) = &self.dlq {
            daemon.insert(
                "dlq".into(),
                serde_json::to_value(dlq.snapshot()).unwrap_or_default(),
            );
        }
        if let Some(link) = &self.compaction {
            daemon.insert(
                "compaction".into(),
                serde_json::to_value(link.handle.snapshot()).unwrap_or_default(),
            );
        }
        let sm = self.shared.store.metrics();
        daemon.insert(
            "store".into(),
            serde_json::to_value(&sm).unwrap_or_default(),
        );
        MetricsResponsePayload {
            agents,
            system: SystemMetrics {
                total_memory: total,
                free_memory: free,
                heap_used: crate::sysinfo::rss_bytes(None).unwrap_or(0),
            },
            daemon: Some(daemon),
        }
    }

    pub(crate) fn on_watch(&mut self, conn_id: u64, env: Envelope) {
        let p: WatchPayload = match env.payload_as() {
            Ok(p) => p,
            Err(e) => {
                return self.reply_error(
                    conn_id,
                    ErrorCode::BadRequest,
                    format!("invalid WATCH payload: {e}"),
                    &env.id,
                )
            }
        };
        if let Some(conn) = self.conns.get_mut(&conn_id) {
            conn.watch = Some(p);
            self.watchers.insert(conn_id);
        }
    }

    pub(crate) fn on_log(&mut self, conn_id: u64, env: Envelope) {
        if self.watchers.is_empty() {
            return;
        }
        let Some(agent) = self.conn_name(conn_id).map(str::to_string) else {
            return;
        };
        let Ok(p) = env.payload_as::<LogPayload>() else {
            return self.reply_error(
                conn_id,
                ErrorCode::BadRequest,
                "invalid LOG payload: expected {data, timestamp?}".into(),
                &env.id,
            );
        };
        let event = WatchEventPayload::Log {
            agent: agent.clone(),
            data: p.data,
            timestamp: p.timestamp.unwrap_or(env.ts),
        };
        self.push_to_watchers(&event, |w| {
            w.logs && w.agent.as_deref().is_none_or(|a| a == agent)
        });
    }

    /// Sends a WATCH_EVENT to every watcher whose WATCH request `wants` it.
    fn push_to_watchers(
        &mut self,
        event: &WatchEventPayload,
        wants: impl Fn(&WatchPayload) -> bool,
    ) {
        let frame = frame_of(&Envelope::new(MessageType::WatchEvent, event), usize::MAX);
        let targets: Vec<u64> = self
            .watchers
            .iter()
            .copied()
            .filter(|id| {
                self.conns
                    .get(id)
                    .and_then(|c| c.watch.as_ref())
                    .is_some_and(&wants)
            })
            .collect();
        for id in targets {
            self.push(id, frame.clone());
        }
    }

    pub(crate) fn notify_watchers(
        &mut self,
        sender: &str,
        to: &str,
        env: &Envelope,
        payload: &SendPayload,
    ) {
        if self.watchers.is_empty() {
            return;
        }
        let record = MessageRecord {
            id: env.id.clone(),
            from: sender.to_string(),
            to: to.to_string(),
            body: payload.body.clone(),
            channel: to.starts_with('#').then(|| to.to_string()),
            thread: payload.thread.clone(),
            timestamp: relay_protocol::now_ms(),
            status: None,
            is_broadcast: Some(to == "*" || to == "@users" || to.starts_with('#')),
            reply_count: None,
            data: payload.data.clone(),
            kind: Some(payload.kind.as_str().to_string()),
            topic: env.topic.clone(),
            original_to: None,
            attempts: None,
        };
        self.push_to_watchers(&WatchEventPayload::Message(Box::new(record)), |w| {
            w.messages && w.agent.as_deref().is_none_or(|a| a == sender || a == to)
        });
    }
}
