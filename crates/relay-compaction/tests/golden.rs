//! Golden tests: realistic conversations under `tests/fixtures/`, compacted
//! with the `o200k` tokenizer and the built-in summariser, compared with the
//! committed expectations under `tests/golden/` (the rendered context and a
//! JSON report: steps, kept ids, summary). Run with `UPDATE_GOLDEN=1` to
//! rewrite the expectations after an intended change, and review the diff.

use std::path::PathBuf;

use relay_compaction::{
    render_context, CompactionConfig, CompactionOutcome, CompactionResult, Compactor,
    HistoryMessage, MessageRole, Strategy,
};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Fixture {
    agent: String,
    config: CompactionConfig,
    messages: Vec<HistoryMessage>,
}

struct Run {
    fixture: Fixture,
    result: CompactionResult,
    context: String,
}

fn dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(sub)
}

fn report(result: &CompactionResult) -> String {
    let value = json!({
        "outcome": result.outcome,
        "original_messages": result.original_messages,
        "original_tokens": result.original_tokens,
        "final_tokens": result.final_tokens,
        "target_tokens": result.target_tokens,
        "steps": result.steps,
        "summarizer_used": result.summarizer_used,
        "kept_ids": result.messages.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        "summary": result.summary().map(|m| m.body.lines().collect::<Vec<_>>()),
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

fn check_golden(name: &str, actual: &str) {
    let path = dir("golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(dir("golden")).expect("create tests/golden");
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the output at line {}:\n  expected: {:?}\n  actual:   {:?}\n\
             If the change is intended, run with UPDATE_GOLDEN=1 and review the diff.",
            path.display(),
            line + 1,
            expected.lines().nth(line).unwrap_or("<end>"),
            actual.lines().nth(line).unwrap_or("<end>"),
        );
    }
}

async fn run(name: &str) -> Run {
    let path = dir("fixtures").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).expect("read fixture");
    let fixture: Fixture = serde_json::from_str(&text).expect("parse fixture");
    let compactor = Compactor::new(fixture.config.clone()).expect("valid fixture config");
    let result = compactor.compact(&fixture.messages).await;
    let context = render_context(&fixture.agent, &result);
    check_golden(&format!("{name}.context.txt"), &context);
    check_golden(&format!("{name}.report.json"), &report(&result));
    common_checks(&fixture, &result, &context, &compactor);
    Run {
        fixture,
        result,
        context,
    }
}

/// What every fixture must show, whatever the golden files say.
fn common_checks(fixture: &Fixture, result: &CompactionResult, context: &str, c: &Compactor) {
    assert_eq!(
        result.outcome,
        CompactionOutcome::Reached,
        "{:?}",
        result.steps
    );
    assert!(result.final_tokens <= result.target_tokens);
    assert!(result.original_tokens > fixture.config.threshold_tokens());
    // The recent messages are in the context verbatim, in order, at the end.
    let keep = fixture.config.keep_recent;
    let recent = &fixture.messages[fixture.messages.len() - keep..];
    let mut from = 0;
    for m in recent {
        let line = relay_compaction::render_message(m);
        let at = context[from..]
            .find(&line)
            .unwrap_or_else(|| panic!("recent message {} not verbatim in the context", m.id));
        from += at + line.len();
    }
    assert_eq!(context[from..].trim(), "");
    // System messages survive verbatim.
    for m in fixture
        .messages
        .iter()
        .filter(|m| m.role == MessageRole::System)
    {
        assert!(context.contains(&relay_compaction::render_message(m)));
    }
    // At most one summary, within its cap.
    let summaries: Vec<&HistoryMessage> = result
        .messages
        .iter()
        .filter(|m| m.role == MessageRole::Summary)
        .collect();
    assert!(summaries.len() <= 1);
    for s in summaries {
        assert!(c.counter().count(&s.body) <= fixture.config.summarizer.max_summary_tokens);
    }
    // The context's size is what the result says (within the header).
    let rendered = c.counter().count(context);
    assert!(
        rendered.abs_diff(result.final_tokens) < 80,
        "{rendered} vs {}",
        result.final_tokens
    );
}

fn summary(run: &Run) -> &str {
    run.result
        .summary()
        .map(|m| m.body.as_str())
        .expect("a summary")
}

fn assert_contains_all(text: &str, facts: &[&str]) {
    for fact in facts {
        assert!(text.contains(fact), "missing {fact:?} in:\n{text}");
    }
}

#[tokio::test]
async fn feature_export() {
    let run = run("feature_export").await;
    let summary = summary(&run);
    // Key decisions and numbers from the folded part of the conversation.
    assert_contains_all(
        summary,
        &[
            "Lead: Decision: we will write exports to object storage (bucket audit-exports)",
            "expire after 15 minutes",
            "pages of 5,000 rows",
            "kind = 'audit_export'",
            "2 million rows",
        ],
    );
    assert!(summary.starts_with("Summary of "));
    // Later decisions are either summarised or kept verbatim.
    for fact in [
        "at most 3 running exports per tenant",
        "exports_duration_seconds",
    ] {
        assert!(run.context.contains(fact), "missing {fact:?}");
    }
    assert_eq!(run.fixture.agent, "Backend");
}

#[tokio::test]
async fn bug_hunt() {
    let run = run("bug_hunt").await;
    let summary = summary(&run);
    assert_contains_all(
        summary,
        &[
            "crates/relay-daemon/src/router/send.rs:212:17",
            "2 crashes in 61 minutes",
            "fails 3 times in 500 runs",
            "Decision: go with option (a)",
        ],
    );
    for fact in ["revert #615", "p99 back to 37 ms"] {
        assert!(run.context.contains(fact), "missing {fact:?}");
    }
}

#[tokio::test]
async fn status_pings() {
    let run = run("status_pings").await;
    // Dedupe did the bulk of the work on repeated pings.
    let dedupe = &run.result.steps[0];
    assert_eq!(dedupe.strategy, Strategy::Deduplicate);
    assert!(dedupe.messages_removed >= 30, "{dedupe:?}");
    // The rare facts among the pings survive, verbatim or in the summary.
    for fact in [
        "id 88123",
        "91% full",
        "pause the payments migration",
        "batch size 5,000",
        "480,000 rows migrated",
    ] {
        assert!(run.context.contains(fact), "missing {fact:?}");
    }
    // Each repeated status line appears at most once per sender outside
    // the recent messages.
    let keep = run.fixture.config.keep_recent;
    let older = &run.result.messages[..run.result.messages.len() - keep];
    let mut seen = std::collections::HashSet::new();
    for m in older.iter().filter(|m| m.body.starts_with("Status:")) {
        assert!(
            seen.insert((&m.from, &m.body)),
            "repeated {:?} from {}",
            m.body,
            m.from
        );
    }
}
