//! The external summariser: used when it works, the built-in one with the
//! error recorded when it does not.

#![cfg(unix)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{compactor, config, msg};
use relay_compaction::{
    CompactionOutcome, CompactionResult, HistoryMessage, MessageRole, Strategy, SummarizerError,
    SummarizerUsed,
};

fn history() -> Vec<HistoryMessage> {
    (0..60)
        .map(|i| {
            msg(
                i,
                if i % 2 == 0 { "Alice" } else { "Bob" },
                &format!(
                    "Note {i}: we decided shard s{i} keeps {} replicas.",
                    i % 5 + 1
                ),
            )
        })
        .collect()
}

async fn run(command: &str, timeout_ms: u64) -> CompactionResult {
    let mut cfg = config(1_200, 5, &[Strategy::Summarize, Strategy::Aggressive]);
    cfg.summarizer.command = Some(command.to_owned());
    cfg.summarizer.timeout_ms = timeout_ms;
    cfg.summarizer.max_summary_tokens = 200;
    let c = compactor(cfg);
    let input = history();
    let result = c.compact(&input).await;
    assert_ne!(result.outcome, CompactionOutcome::NotNeeded);
    assert_eq!(result.steps[0].strategy, Strategy::Summarize);
    assert_eq!(result.steps[0].messages_added, 1, "{:?}", result.steps);
    let summary = result.summary().expect("a summary message");
    assert!(c.counter().count(&summary.body) <= 200);
    result
}

fn failure(result: &CompactionResult) -> &SummarizerError {
    match &result.summarizer_used {
        Some(SummarizerUsed::BuiltInAfterExternalFailed { error }) => error,
        other => panic!("expected a fallback, got {other:?}"),
    }
}

fn summary_body(result: &CompactionResult) -> &str {
    result
        .summary()
        .map(|m| m.body.as_str())
        .unwrap_or_default()
}

/// The built-in summary is recognisable by its attributed bullet lines.
fn assert_built_in(result: &CompactionResult) {
    let body = summary_body(result);
    assert!(body.starts_with("Summary of "), "{body}");
    assert!(body.contains("\n- Alice: Note 0: we decided"), "{body}");
}

#[tokio::test]
async fn a_working_command_is_used() {
    let result = run("sh -c 'head -c 300'", 5_000).await;
    assert_eq!(result.summarizer_used, Some(SummarizerUsed::External));
    let body = summary_body(&result);
    // Our header, then the command's output: the start of the transcript.
    assert!(body.starts_with("Summary of "), "{body}");
    assert!(
        body.contains("[00:00:00] Alice → Agent: Note 0: we decided shard s0"),
        "{body}"
    );
    assert_eq!(
        result
            .messages
            .iter()
            .filter(|m| m.role == MessageRole::Summary)
            .count(),
        1
    );
}

#[tokio::test]
async fn arguments_are_split_like_a_shell_without_one() {
    let result = run("tr 'a-z' 'A-Z'", 5_000).await;
    assert_eq!(result.summarizer_used, Some(SummarizerUsed::External));
    assert!(summary_body(&result).contains("ALICE → AGENT: NOTE 0: WE DECIDED"));
}

#[tokio::test]
async fn the_command_is_told_the_token_cap() {
    let result = run(
        r#"sh -c 'cat >/dev/null; echo "cap=$AGENT_RELAY_SUMMARY_MAX_TOKENS"'"#,
        5_000,
    )
    .await;
    assert_eq!(result.summarizer_used, Some(SummarizerUsed::External));
    let body = summary_body(&result);
    let cap: usize = body
        .split("cap=")
        .nth(1)
        .and_then(|s| s.trim().parse().ok())
        .expect("the cap is printed");
    assert!((32..=200).contains(&cap), "{body}");
}

#[tokio::test]
async fn long_output_is_cut_to_the_cap() {
    let result = run(
        "sh -c 'cat >/dev/null; yes important fact | head -n 5000'",
        5_000,
    )
    .await;
    assert_eq!(result.summarizer_used, Some(SummarizerUsed::External));
    assert!(summary_body(&result).contains("important fact"));
}

#[tokio::test]
async fn a_failing_command_falls_back_with_its_error() {
    let result = run(
        "sh -c 'cat >/dev/null; echo model unavailable >&2; exit 1'",
        5_000,
    )
    .await;
    let error = failure(&result);
    assert!(matches!(error, SummarizerError::Failed { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("exit status: 1") && text.contains("model unavailable"),
        "{text}"
    );
    assert_built_in(&result);
}

#[tokio::test]
async fn empty_output_falls_back() {
    let result = run("sh -c 'cat >/dev/null'", 5_000).await;
    assert!(matches!(
        failure(&result),
        SummarizerError::EmptyOutput { .. }
    ));
    assert_built_in(&result);
}

#[tokio::test]
async fn a_missing_program_falls_back() {
    let result = run("relay-no-such-summariser --fast", 5_000).await;
    let error = failure(&result);
    assert!(matches!(error, SummarizerError::Spawn { .. }), "{error:?}");
    assert!(error.to_string().contains("relay-no-such-summariser"));
    assert_built_in(&result);
}

fn alive(pid: u32) -> bool {
    // A killed process may linger as a zombie until it is reaped.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn read_pid(path: &Path) -> u32 {
    let text = std::fs::read_to_string(path).expect("the command wrote its pid");
    text.trim().parse().expect("a pid")
}

fn wait_dead(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[tokio::test]
async fn a_hanging_command_is_killed_at_the_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("pid");
    let command = format!("sh -c 'echo $$ > {}; exec sleep 30'", pid_file.display());
    let started = Instant::now();
    let result = run(&command, 300).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    let error = failure(&result);
    assert!(
        matches!(
            error,
            SummarizerError::Timeout {
                timeout_ms: 300,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("300 ms"));
    assert_built_in(&result);
    let pid = read_pid(&pid_file);
    assert!(wait_dead(pid), "summariser {pid} still running");
}

#[tokio::test]
async fn a_timeout_kills_the_commands_children_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("pid");
    // The shell starts sleep in the background and waits: killing only the
    // shell would leave sleep (holding the output pipe) behind.
    let command = format!("sh -c 'sleep 30 & echo $! > {}; wait'", pid_file.display());
    let started = Instant::now();
    let result = run(&command, 300).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(failure(&result), SummarizerError::Timeout { .. }));
    let pid = read_pid(&pid_file);
    assert!(wait_dead(pid), "grandchild {pid} still running");
}
