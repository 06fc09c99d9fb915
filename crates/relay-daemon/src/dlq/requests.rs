//! `DLQ_*` requests from operators (the CLI, dashboards): list, get, stats, replay, ack, purge.

use std::time::Duration;

use relay_dlq::{DlqError, DlqQuery, DlqState, FailureReason};
use relay_protocol::{
    DlqCountResponsePayload, DlqFilter, DlqGetPayload, DlqGetResponsePayload,
    DlqListResponsePayload, DlqSelectPayload, DlqStatsResponsePayload, Envelope, ErrorCode,
    MessageType,
};
use serde::Serialize;

use super::service::{now_ms, DlqService};
use crate::connection::{error_frame, frame_of, Outbound, Outlet};

/// A request that cannot be served, as the client should read it.
struct Refusal(String);

impl From<DlqError> for Refusal {
    fn from(e: DlqError) -> Self {
        Refusal(format!("dead letter store: {e}"))
    }
}

fn query_of(f: &DlqFilter) -> Result<DlqQuery, Refusal> {
    let reason = f
        .reason
        .as_deref()
        .map(|r| {
            r.parse::<FailureReason>()
                .map_err(|_| Refusal(format!("unknown reason {r:?}; use one of {}", reasons())))
        })
        .transpose()?;
    let state = f
        .state
        .as_deref()
        .map(|s| {
            s.parse::<DlqState>().map_err(|_| {
                Refusal(format!(
                    "unknown state {s:?}; use pending, replaying, delivered or exhausted"
                ))
            })
        })
        .transpose()?;
    Ok(DlqQuery {
        to: f.to.clone(),
        from: f.from.clone(),
        reason,
        state,
        acknowledged: f.acknowledged,
        since_ts: f.since_ts,
        until_ts: f.until_ts,
        ids: f.ids.clone(),
        limit: f.limit,
        offset: f.offset.unwrap_or(0),
        ..DlqQuery::default()
    })
}

fn reasons() -> String {
    FailureReason::ALL
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn selection(p: &DlqSelectPayload, verb: &str) -> Result<DlqQuery, Refusal> {
    if p.filter.is_empty() && !p.all {
        return Err(Refusal(format!(
            "refusing to {verb} every dead letter without all=true; pass ids, a filter, or all=true"
        )));
    }
    let mut q = query_of(&p.filter)?;
    // A limit selects the first N matching letters (oldest first); none means all of them.
    q.limit = Some(p.filter.limit.unwrap_or(usize::MAX));
    q.descending = false;
    Ok(q)
}

impl DlqService {
    pub(super) async fn answer(&mut self, env: Envelope, requester: &str, outlet: Outlet) {
        let Some(resp_type) = env.msg_type.response_type() else {
            return;
        };
        let result = match env.msg_type {
            MessageType::DlqList => self.list(&env).await.and_then(|p| to_value(&p)),
            MessageType::DlqGet => self.get(&env).await.and_then(|p| to_value(&p)),
            MessageType::DlqStats => self.stats().await.and_then(|p| to_value(&p)),
            MessageType::DlqReplay => self.replay_selected(&env).await.and_then(|p| to_value(&p)),
            MessageType::DlqAck => self
                .ack_selected(&env, requester)
                .await
                .and_then(|p| to_value(&p)),
            MessageType::DlqPurge => self.purge_selected(&env).await.and_then(|p| to_value(&p)),
            _ => return,
        };
        let frame = match result {
            Ok(payload) => frame_of(
                &Envelope::new(resp_type, &payload).id(env.id.clone()),
                usize::MAX,
            ),
            Err(Refusal(msg)) => error_frame(ErrorCode::BadRequest, msg, false, Some(&env.id)),
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            outlet.tx.send(Outbound::Frame(frame)),
        )
        .await;
    }

    async fn list(&mut self, env: &Envelope) -> Result<DlqListResponsePayload, Refusal> {
        let f: DlqFilter = parse(env)?;
        let q = query_of(&f)?;
        let letters = self.store.query(&q).await?;
        let total = self.store.count(&q).await?;
        Ok(DlqListResponsePayload {
            letters: letters
                .iter()
                .filter_map(|l| serde_json::to_value(l).ok())
                .collect(),
            total,
        })
    }

    async fn get(&mut self, env: &Envelope) -> Result<DlqGetResponsePayload, Refusal> {
        let p: DlqGetPayload = parse(env)?;
        Ok(match self.store.get(&p.id).await {
            Ok(Some(l)) => DlqGetResponsePayload {
                letter: serde_json::to_value(&l).ok(),
                error: None,
            },
            Ok(None) => DlqGetResponsePayload {
                letter: None,
                error: Some(format!("no dead letter with id or id prefix {:?}", p.id)),
            },
            Err(DlqError::Ambiguous { prefix, count }) => DlqGetResponsePayload {
                letter: None,
                error: Some(format!(
                    "id prefix {prefix:?} matches {count} dead letters; give more characters"
                )),
            },
            Err(e) => return Err(e.into()),
        })
    }

    async fn stats(&mut self) -> Result<DlqStatsResponsePayload, Refusal> {
        let stats = self.store.stats().await?;
        self.publish();
        let status = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        Ok(DlqStatsResponsePayload {
            enabled: true,
            stats: serde_json::to_value(&stats).ok(),
            health: Some(serde_json::json!({
                "backend": status.backend,
                "degraded": status.degraded,
                "spooled": status.spooled,
                "lastError": status.last_error,
                "alerting": status.alerting,
            })),
            counters: serde_json::to_value(&status.counters).ok(),
        })
    }

    async fn replay_selected(
        &mut self,
        env: &Envelope,
    ) -> Result<DlqCountResponsePayload, Refusal> {
        let p: DlqSelectPayload = parse(env)?;
        let q = selection(&p, "replay")?;
        let letters = self.store.query(&q).await?;
        let mut ids = Vec::new();
        for letter in letters {
            if letter.state == DlqState::Delivered {
                continue;
            }
            let id = letter.id.clone();
            if self.replay(letter, true).await {
                ids.push(id);
            }
        }
        Ok(DlqCountResponsePayload {
            count: ids.len() as u64,
            ids,
        })
    }

    async fn ack_selected(
        &mut self,
        env: &Envelope,
        requester: &str,
    ) -> Result<DlqCountResponsePayload, Refusal> {
        let p: DlqSelectPayload = parse(env)?;
        let mut q = selection(&p, "acknowledge")?;
        q.acknowledged = Some(false);
        let ids: Vec<String> = self
            .store
            .query(&q)
            .await?
            .into_iter()
            .map(|l| l.id)
            .collect();
        let by = p.by.clone().unwrap_or_else(|| requester.to_string());
        let count = self.store.acknowledge(&ids, &by, now_ms()).await?;
        Ok(DlqCountResponsePayload { count, ids })
    }

    async fn purge_selected(&mut self, env: &Envelope) -> Result<DlqCountResponsePayload, Refusal> {
        let p: DlqSelectPayload = parse(env)?;
        let q = selection(&p, "purge")?;
        let ids: Vec<String> = self
            .store
            .query(&q)
            .await?
            .into_iter()
            .map(|l| l.id)
            .collect();
        let count = self.store.purge(&DlqQuery::by_ids(ids.clone())).await?;
        Ok(DlqCountResponsePayload { count, ids })
    }
}

fn parse<T: serde::de::DeserializeOwned>(env: &Envelope) -> Result<T, Refusal> {
    env.payload_as()
        .map_err(|e| Refusal(format!("invalid {} payload: {e}", env.msg_type)))
}

fn to_value<T: Serialize>(p: &T) -> Result<serde_json::Value, Refusal> {
    serde_json::to_value(p).map_err(|e| Refusal(format!("cannot encode the answer: {e}")))
}
