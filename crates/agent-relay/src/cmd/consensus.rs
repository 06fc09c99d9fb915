//! `agent-relay consensus`: proposals decided by the daemon's `_consensus` (open, vote, list,
//! show, cancel, statistics).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use relay_client::{Client, ClientError, Event, EventStream};
use relay_consensus::{
    render_accepted, rule_text, ConsensusStats, ConsensusType, CreateProposal, Proposal,
    ProposalStatus, VoteOutcome, CONSENSUS_AGENT,
};
use relay_protocol::{
    now_ms, ConsensusListPayload, ConsensusListResponsePayload, ConsensusResponsePayload, ErrorCode,
};
use serde::Deserialize;
use serde_json::Value;

use crate::cli::{
    ConsensusCancelArgs, ConsensusListArgs, ConsensusProposeArgs, ConsensusShowArgs,
    ConsensusVoteArgs,
};
use crate::context::Ctx;
use crate::output::{field, one_line, print_counts, print_json, table, truncate, ts, ts_rel};

/// Characters of a title shown by `consensus list`.
const TITLE_WIDTH: usize = 40;
/// How long a command waits for the messages `_consensus` sends its connection (so that they
/// are acknowledged before the connection closes).
const REPLY_WAIT: Duration = Duration::from_secs(2);

/// `consensus propose`.
pub async fn propose(ctx: &Ctx, args: &ConsensusProposeArgs) -> anyhow::Result<ExitCode> {
    let req = CreateProposal {
        title: args.title.clone(),
        description: args.description.clone(),
        participants: args.participants.clone(),
        ctype: Some(args.ctype),
        timeout_ms: args.timeout,
        quorum: args.quorum,
        threshold: args.threshold,
        weights: args.weights.iter().cloned().collect(),
    };
    let answer = with_client(
        ctx,
        args.as_name.as_deref(),
        |client, mut events| async move {
            let answer = client
                .consensus_propose(&req)
                .await
                .map_err(|e| daemon_error(ctx, e))?;
            let p = proposal_of(&answer)?;
            let mut wanted = vec![if p.is_some() { "reply" } else { "error" }];
            if p.as_ref().is_some_and(|p| p.is_participant(&p.proposer)) {
                wanted.push("proposal");
            }
            await_messages(&mut events, answer.proposal_id.as_deref(), &wanted).await;
            Ok(answer)
        },
    )
    .await?;
    let p = accepted(&answer)?;
    if args.json {
        print_json(&answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "proposal {} opened: {} ({}, {}, closes {})",
        p.id,
        p.title,
        p.ctype,
        count(p.participants.len(), "participant"),
        ts(p.expires_at)
    );
    Ok(ExitCode::SUCCESS)
}

/// `consensus vote`.
pub async fn vote(ctx: &Ctx, args: &ConsensusVoteArgs) -> anyhow::Result<ExitCode> {
    let (answer, reply) = with_client(
        ctx,
        Some(args.as_name.as_str()),
        |client, mut events| async move {
            let answer = client
                .consensus_vote(&args.id, args.value.as_str(), args.reason.as_deref())
                .await
                .map_err(|e| daemon_error(ctx, e))?;
            let p = proposal_of(&answer)?;
            let wanted: &[&str] = match &p {
                None => &["error"],
                // The vote closed it: the voter, a participant, also receives the result.
                Some(p) if !p.is_pending() => &["reply", "result"],
                Some(_) => &["reply"],
            };
            let mut got = await_messages(&mut events, Some(&args.id), wanted).await;
            Ok((answer, got.remove("reply")))
        },
    )
    .await?;
    let p = accepted(&answer)?;
    if args.json {
        print_json(&answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    // The daemon's own reply; the same text made here if it did not arrive in time.
    let text = reply.unwrap_or_else(|| {
        render_accepted(&VoteOutcome {
            resolved: !p.is_pending(),
            previous: None,
            proposal: p,
        })
    });
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// `consensus cancel`.
pub async fn cancel(ctx: &Ctx, args: &ConsensusCancelArgs) -> anyhow::Result<ExitCode> {
    let answer = with_client(
        ctx,
        Some(args.as_name.as_str()),
        |client, mut events| async move {
            let answer = client
                .consensus_cancel(&args.id)
                .await
                .map_err(|e| daemon_error(ctx, e))?;
            if answer.ok {
                // The proposer (this connection) receives the result like every participant.
                await_messages(&mut events, Some(&args.id), &["result"]).await;
            }
            Ok(answer)
        },
    )
    .await?;
    let p = accepted(&answer)?;
    if args.json {
        print_json(&answer)?;
    } else {
        println!("{}", render_accepted(&p));
    }
    Ok(ExitCode::SUCCESS)
}

/// `consensus list`.
pub async fn list(ctx: &Ctx, args: &ConsensusListArgs) -> anyhow::Result<ExitCode> {
    let query = ConsensusListPayload {
        status: args.status.clone(),
        participant: args.participant.clone(),
    };
    let answer = with_client(ctx, None, |client, _events| async move {
        client
            .consensus_list(query)
            .await
            .map_err(|e| daemon_error(ctx, e))
    })
    .await?;
    if args.json {
        print_json(&answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    let ConsensusListResponsePayload { proposals } = answer;
    let mut rows = Vec::with_capacity(proposals.len());
    for v in &proposals {
        let p = decode(v)?;
        rows.push(vec![
            p.id.clone(),
            p.status.to_string(),
            p.ctype.to_string(),
            truncate(&one_line(&p.title), TITLE_WIDTH),
            format!("{}/{}", p.votes.len(), p.participants.len()),
            ts(closes(&p)),
        ]);
    }
    if !rows.is_empty() {
        println!(
            "{}",
            table(
                &["ID", "STATUS", "TYPE", "TITLE", "VOTES", "CLOSES/CLOSED"],
                &rows
            )
        );
    }
    println!("{}", count(rows.len(), "proposal"));
    Ok(ExitCode::SUCCESS)
}

/// `consensus show`.
pub async fn show(ctx: &Ctx, args: &ConsensusShowArgs) -> anyhow::Result<ExitCode> {
    let answer = with_client(ctx, None, |client, _events| async move {
        client
            .consensus_get(&args.id)
            .await
            .map_err(|e| daemon_error(ctx, e))
    })
    .await?;
    let Some(v) = answer.proposal else {
        anyhow::bail!(
            "{}",
            answer
                .error
                .unwrap_or_else(|| format!("no proposal {:?}", args.id))
        );
    };
    if args.json {
        print_json(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    let p = decode(&v)?;
    let now = now_ms();
    field("id", &p.id);
    field("title", &p.title);
    field("status", p.status.as_str());
    field("type", p.ctype.as_str());
    field("rule", &rule_text(&p));
    field("proposer", &p.proposer);
    field("participants", &participants(&p));
    if p.ctype == ConsensusType::Supermajority {
        field("threshold", &percent(p.effective_threshold()));
    }
    if p.ctype == ConsensusType::Quorum {
        field(
            "quorum",
            &format!(
                "{} of {}",
                count(p.effective_quorum(), "voter"),
                p.participants.len()
            ),
        );
    }
    field("created", &ts_rel(p.created_at, now));
    let deadline_label = if p.is_pending() { "closes" } else { "deadline" };
    field(deadline_label, &ts_rel(p.expires_at, now));
    field("thread", &p.thread);
    field(
        "votes",
        &format!(
            "{} of {}",
            p.votes.len(),
            count(p.participants.len(), "participant")
        ),
    );
    print_votes(&p);
    let non_voters = p.non_voters();
    if !non_voters.is_empty() {
        field("not voted", &non_voters.join(", "));
    }
    if let Some(r) = &p.result {
        let by = r.resolved_by.as_str().replace('_', " ");
        field(
            "result",
            &format!(
                "{} ({by}) at {}",
                r.decision.as_upper(),
                ts_rel(r.resolved_at, now)
            ),
        );
        let mut tally = format!(
            "approve {}, reject {}, abstain {}",
            r.approve_weight, r.reject_weight, r.abstain_weight
        );
        if p.ctype == ConsensusType::Weighted {
            tally.push_str(&format!(" (by weight, total {})", r.total_weight));
        }
        field("tally", &tally);
        field("why", &r.summary);
    }
    if !p.description.is_empty() {
        println!();
        println!("{}", p.description);
    }
    Ok(ExitCode::SUCCESS)
}

/// `consensus stats`.
pub async fn stats(ctx: &Ctx, json: bool) -> anyhow::Result<ExitCode> {
    let answer = with_client(ctx, None, |client, _events| async move {
        client
            .consensus_stats()
            .await
            .map_err(|e| daemon_error(ctx, e))
    })
    .await?;
    if json {
        print_json(&answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    let stats = match answer.get("stats") {
        None | Some(Value::Null) => {
            println!("consensus is disabled on this daemon: {}", enable_hint(ctx));
            return Ok(ExitCode::SUCCESS);
        }
        Some(v) => ConsensusStats::deserialize(v)
            .map_err(|e| anyhow::anyhow!("unexpected statistics from the daemon: {e}"))?,
    };
    field(
        "proposals",
        &format!("{} ({} pending)", stats.total, stats.pending),
    );
    field("approved", &stats.approved.to_string());
    field("rejected", &stats.rejected.to_string());
    field("no consensus", &stats.no_consensus.to_string());
    field("cancelled", &stats.cancelled.to_string());
    let closed = stats
        .approved
        .saturating_add(stats.rejected)
        .saturating_add(stats.no_consensus)
        .saturating_add(stats.cancelled);
    if closed > 0 {
        field(
            "participation",
            &format!(
                "{} of the participants voted, on average over closed proposals",
                percent(stats.avg_participation)
            ),
        );
    }
    println!();
    println!("by type:");
    let mut by_type: Vec<(ConsensusType, usize)> =
        stats.by_type.iter().map(|(t, n)| (*t, *n)).collect();
    // Most used first; unused types keep their usual order.
    by_type.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    print_counts(
        &by_type
            .into_iter()
            .map(|(t, n)| (t.to_string(), n.to_string()))
            .collect::<Vec<_>>(),
    );
    Ok(ExitCode::SUCCESS)
}

/// Connects, runs `f`, and closes the connection whatever `f` returned. With `as_name` the
/// connection is a user of that name (what a vote counts for); without, this invocation's own
/// transient connection.
async fn with_client<T, F, Fut>(ctx: &Ctx, as_name: Option<&str>, f: F) -> anyhow::Result<T>
where
    F: FnOnce(Client, EventStream) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let (client, events) = ctx.connect_maybe_as(as_name).await?;
    let result = f(client.clone(), events).await;
    client.close().await;
    result
}

/// Waits, at most [`REPLY_WAIT`], until `_consensus` has sent this connection one message of
/// each `wanted` event (`reply`, `proposal`, `result` about `proposal_id`, or `error`); the
/// client acknowledges them as they arrive. Returns the bodies received, by event.
async fn await_messages(
    events: &mut EventStream,
    proposal_id: Option<&str>,
    wanted: &[&str],
) -> BTreeMap<String, String> {
    let mut missing: BTreeSet<&str> = wanted.iter().copied().collect();
    let mut got = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + REPLY_WAIT;
    while !missing.is_empty() {
        let event = match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => event,
            // Timed out, or the connection is gone.
            Err(_) | Ok(None) => break,
        };
        let d = match event {
            Event::Message(d) if d.from == CONSENSUS_AGENT => d,
            Event::Closed { .. } => break,
            _ => continue,
        };
        let meta = d.payload.data.as_ref().and_then(|m| m.get(CONSENSUS_AGENT));
        let kind = meta
            .and_then(|m| m.get("event"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let about = meta
            .and_then(|m| m.get("proposalId"))
            .and_then(Value::as_str);
        if kind == "error" || (about.is_some() && about == proposal_id) {
            if let Some(kind) = missing.take(kind) {
                got.insert(kind.to_string(), d.payload.body);
            }
        }
    }
    got
}

/// The proposal of a successful answer; the daemon's message as the error of a refused one.
fn accepted(answer: &ConsensusResponsePayload) -> anyhow::Result<Proposal> {
    if !answer.ok {
        anyhow::bail!("{}", answer.message);
    }
    proposal_of(answer)?
        .ok_or_else(|| anyhow::anyhow!("the daemon accepted the request but sent no proposal"))
}

/// The proposal in an answer, if any.
fn proposal_of(answer: &ConsensusResponsePayload) -> anyhow::Result<Option<Proposal>> {
    answer.proposal.as_ref().map(decode).transpose()
}

fn decode(v: &Value) -> anyhow::Result<Proposal> {
    Proposal::deserialize(v)
        .map_err(|e| anyhow::anyhow!("unexpected proposal from the daemon: {e}"))
}

/// A daemon error, with what to do about the ones that have a remedy.
fn daemon_error(ctx: &Ctx, e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Server(p) if p.message.contains("consensus is disabled") => {
            anyhow::anyhow!("consensus is disabled on this daemon: {}", enable_hint(ctx))
        }
        ClientError::Server(p) if p.message.starts_with("unsupported type") => {
            anyhow::anyhow!(
                "the running daemon does not support consensus requests ({}); it may be an \
                 older build: restart it with agent-relay down && agent-relay up",
                p.message
            )
        }
        ClientError::Server(p) if matches!(p.code, ErrorCode::NotFound | ErrorCode::BadRequest) => {
            anyhow::anyhow!("{}", p.message)
        }
        e => e.into(),
    }
}

fn enable_hint(ctx: &Ctx) -> String {
    format!(
        "enable it with `[consensus] enabled = true` in {} and restart the daemon \
         (agent-relay down && agent-relay up)",
        ctx.paths.config_file.display()
    )
}

/// When a proposal closes (pending) or closed.
fn closes(p: &Proposal) -> i64 {
    match (&p.result, p.status) {
        (Some(r), status) if status != ProposalStatus::Pending => r.resolved_at,
        _ => p.expires_at,
    }
}

/// Participants, with their weights for the weighted type.
fn participants(p: &Proposal) -> String {
    if p.ctype != ConsensusType::Weighted {
        return p.participants.join(", ");
    }
    p.participants
        .iter()
        .map(|name| format!("{name} (weight {})", p.weight_of(name)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One indented line per vote: voter, value, when, and the reason.
fn print_votes(p: &Proposal) {
    let width = p
        .votes
        .iter()
        .map(|v| v.voter.chars().count())
        .max()
        .unwrap_or(0);
    for v in &p.votes {
        let pad = width.saturating_sub(v.voter.chars().count());
        let reason = v
            .reason
            .as_deref()
            .map(|r| format!("  {}", one_line(r)))
            .unwrap_or_default();
        println!(
            "  {}{}  {:<7}  {}{reason}",
            v.voter,
            " ".repeat(pad),
            v.value.as_str(),
            ts(v.at)
        );
    }
}

/// `1 proposal`, `3 proposals`.
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `67%`, `66.7%`.
fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if (p - p.round()).abs() < 0.05 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        serde_json::json!({
            "id": "prop_0193a1b2c3d4e5f6a7b8",
            "title": "Ship it",
            "proposer": "Pat",
            "type": "majority",
            "participants": ["Quinn", "Rita"],
            "createdAt": 1_795_521_601_000_i64,
            "expiresAt": 1_795_521_901_000_i64,
            "status": "approved",
            "votes": [
                {"voter": "Quinn", "value": "approve", "at": 1_795_521_602_000_i64},
                {"voter": "Rita", "value": "approve", "reason": "green", "at": 1_795_521_603_000_i64}
            ],
            "result": {
                "decision": "approved", "approveWeight": 2.0, "rejectWeight": 0.0,
                "abstainWeight": 0.0, "totalWeight": 2.0, "voted": 2, "nonVoters": [],
                "resolvedAt": 1_795_521_603_000_i64, "resolvedBy": "all_voted",
                "summary": "2 of 2 approve"
            },
            "thread": "consensus-prop_0193a1b2c3d4e5f6a7b8"
        })
    }

    #[test]
    fn proposals_decode_and_close_when_resolved() {
        let p = decode(&sample()).expect("decodes");
        assert_eq!(p.ctype, ConsensusType::Majority);
        assert_eq!(p.votes.len(), 2);
        assert_eq!(closes(&p), 1_795_521_603_000);
        assert_eq!(participants(&p), "Quinn, Rita");
        assert!(decode(&serde_json::json!({"id": 5})).is_err());
    }

    #[test]
    fn refused_answers_are_errors() {
        let refused = ConsensusResponsePayload {
            ok: false,
            message: "Sam is not a participant".into(),
            proposal_id: None,
            proposal: None,
        };
        let err = accepted(&refused).expect_err("refused");
        assert_eq!(err.to_string(), "Sam is not a participant");
        let ok = ConsensusResponsePayload {
            ok: true,
            message: "prop_0193a1b2c3d4e5f6a7b8 approved".into(),
            proposal_id: Some("prop_0193a1b2c3d4e5f6a7b8".into()),
            proposal: Some(sample()),
        };
        assert_eq!(accepted(&ok).expect("accepted").title, "Ship it");
    }

    #[test]
    fn numbers_and_text() {
        assert_eq!(percent(2.0 / 3.0), "66.7%");
        assert_eq!(percent(0.75), "75%");
        assert_eq!(count(1, "proposal"), "1 proposal");
        assert_eq!(count(0, "proposal"), "0 proposals");
        let cut = truncate(&"x".repeat(100), TITLE_WIDTH);
        assert_eq!(cut.chars().count(), TITLE_WIDTH);
        assert!(cut.ends_with('…'));
        assert!(ts_rel(1_795_521_601_000, 1_795_521_301_000).contains("(in 5m 0s)"));
        assert!(ts_rel(1_795_521_601_000, 1_795_521_901_000).contains("ago"));
    }
}
