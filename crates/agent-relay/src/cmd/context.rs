//! `agent-relay context`: an agent's relay history against its token budget, its compacted
//! context, and on demand a compaction or a delivery now.

use std::process::ExitCode;

use relay_client::ClientError;
use relay_protocol::{now_ms, CompactionReport, ContextResponsePayload};

use crate::cli::ContextArgs;
use crate::context::Ctx;
use crate::output::{field, print_json, ts_rel};

pub async fn run(ctx: &Ctx, args: &ContextArgs) -> anyhow::Result<ExitCode> {
    let (client, _events) = ctx.connect().await?;
    let result = client.context(&args.agent, args.compact, args.inject).await;
    client.close().await;
    let answer = match result {
        Ok(a) => a,
        // The daemon's reason (compaction disabled, unknown agent, no snapshot yet) says what
        // to do; print it as is.
        Err(ClientError::Server(e)) => anyhow::bail!("{}", e.message),
        Err(e) => return Err(anyhow::Error::new(e).context("CONTEXT failed")),
    };
    if args.json {
        print_json(&answer)?;
    } else {
        print_text(&answer);
    }
    Ok(ExitCode::SUCCESS)
}

/// `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn summarizer_text(r: &CompactionReport) -> String {
    match (r.summarizer.as_deref(), &r.summarizer_error) {
        (None, _) => "not used".into(),
        (Some("built_in"), _) => "built-in".into(),
        (Some("external"), _) => "external command".into(),
        (Some("built_in_after_external_failed"), Some(e)) => {
            format!("built-in (the external command failed: {e})")
        }
        (Some(other), _) => other.to_string(),
    }
}

fn steps_text(r: &CompactionReport) -> String {
    if r.steps.is_empty() {
        return "none".into();
    }
    r.steps
        .iter()
        .map(|s| {
            let added = if s.messages_added > 0 {
                format!(" +{}", s.messages_added)
            } else {
                String::new()
            };
            format!(
                "{} -{}{added} ({} → {} tokens)",
                s.strategy,
                s.messages_removed,
                thousands(s.tokens_before),
                thousands(s.tokens_after)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn outcome_text(r: &CompactionReport) -> String {
    match (&r.outcome[..], &r.reason) {
        ("reached", _) => "reached the target".into(),
        ("not_needed", _) => "not needed (the history is within the target)".into(),
        ("cannot_reach_target", Some(reason)) => format!("cannot reach the target: {reason}"),
        (other, _) => other.to_string(),
    }
}

fn print_report(label: &str, r: &CompactionReport) {
    field(
        label,
        &format!(
            "{} ({}), {} ms",
            outcome_text(r),
            if r.trigger == "request" {
                "asked for"
            } else {
                "threshold crossed"
            },
            r.duration_ms
        ),
    );
    field(
        "  tokens",
        &format!(
            "{} → {} (target {})",
            thousands(r.original_tokens),
            thousands(r.final_tokens),
            thousands(r.target_tokens)
        ),
    );
    field(
        "  messages",
        &format!("{} → {} kept", r.original_messages, r.messages_kept),
    );
    field("  steps", &steps_text(r));
    field("  summariser", &summarizer_text(r));
}

fn print_text(a: &ContextResponsePayload) {
    field("agent", &a.agent);
    field(
        "history",
        &format!(
            "{} messages, {} tokens ({})",
            a.history_messages,
            thousands(a.history_tokens),
            a.tokenizer
        ),
    );
    field(
        "budget",
        &format!(
            "{} tokens; compacted above {}, down to {}",
            thousands(a.max_tokens),
            thousands(a.threshold_tokens),
            thousands(a.target_tokens)
        ),
    );
    field(
        "state",
        if a.needs_compaction {
            "over the threshold: a compaction is due"
        } else {
            "within the threshold"
        },
    );
    if let Some(r) = &a.result {
        println!();
        print_report("compaction", r);
    }
    if let Some(injection) = &a.injection {
        let text = match injection.as_str() {
            "delivered" => "delivered to the agent now".to_string(),
            "deferred" => "held back: a sync [await] involving the agent is pending; it is \
                           delivered when that clears"
                .to_string(),
            "offline" => {
                "the agent is offline; it is offered the snapshot when it connects".to_string()
            }
            other => other.to_string(),
        };
        field("delivery", &text);
    }
    println!();
    let Some(s) = &a.snapshot else {
        field(
            "snapshot",
            &format!(
                "none yet (made when the history passes {} tokens, or with --compact)",
                thousands(a.threshold_tokens)
            ),
        );
        return;
    };
    field(
        "snapshot",
        &format!(
            "{} made {}",
            s.id,
            ts_rel(i64::try_from(s.created_at).unwrap_or(0), now_ms())
        ),
    );
    field(
        "  size",
        &format!(
            "{} tokens, {} messages (compacted from {} tokens; target {})",
            thousands(s.tokens),
            s.message_count,
            thousands(s.original_tokens),
            thousands(s.target_tokens)
        ),
    );
    if a.result.is_none() {
        field("  outcome", &outcome_text(&s.report));
        field("  steps", &steps_text(&s.report));
        field("  summariser", &summarizer_text(&s.report));
        field("  took", &format!("{} ms", s.report.duration_ms));
    }
    println!();
    println!("{}", s.content.trim_end());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
