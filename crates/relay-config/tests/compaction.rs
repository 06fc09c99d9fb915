//! The `[compaction]` section: defaults, every layer (file, environment, `-c`), the nested
//! `[compaction.summarizer]` table, and validation messages that name the key.

use std::path::{Path, PathBuf};

use relay_config::{load_from, CompactionSection, Override, RelayConfig};

fn write(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("relay.toml");
    std::fs::write(&p, text).expect("write relay.toml");
    p
}

fn flags(list: &[&str]) -> Vec<Override> {
    list.iter()
        .map(|f| f.parse().expect("a valid -c flag"))
        .collect()
}

fn env(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn error_of(file: &Path, env: &[(String, String)], overrides: &[Override]) -> String {
    match load_from(file, env, overrides) {
        Ok(c) => panic!("expected an error, got {:?}", c.compaction),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_are_documented_values() {
    let c = load_from(Path::new("/none/relay.toml"), &[], &[]).expect("defaults load");
    let s = &c.compaction;
    assert!(!s.enabled);
    assert_eq!(s.max_tokens, 100_000);
    assert_eq!(s.threshold, 0.8);
    assert_eq!(s.target_usage, 0.5);
    assert_eq!(s.keep_recent, 10);
    assert_eq!(s.min_importance, 30);
    assert_eq!(s.dedupe_similarity, 0.85);
    assert_eq!(
        s.strategies,
        [
            "deduplicate",
            "trim_low_importance",
            "summarize",
            "aggressive"
        ]
    );
    assert_eq!(s.tokenizer, "o200k");
    assert!(s.inject);
    assert_eq!(s.max_history, 10_000);
    assert_eq!(s.summarizer.command, "");
    assert_eq!(s.summarizer.timeout_ms, 10_000);
    assert_eq!(s.summarizer.max_summary_tokens, 1000);
    assert_eq!(*s, CompactionSection::default());
    assert_eq!(c, RelayConfig::default());
}

#[test]
fn file_sets_the_section_and_the_nested_summarizer_table() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let f = write(
        tmp.path(),
        "[compaction]\nenabled = true\nmax_tokens = 2000\nstrategies = [\"summarize\", \"aggressive\"]\n\
         \n[compaction.summarizer]\ncommand = \"sh -c 'echo hi'\"\ntimeout_ms = 500\n",
    );
    let c = load_from(&f, &[], &[]).expect("loads");
    assert!(c.compaction.enabled);
    assert_eq!(c.compaction.max_tokens, 2000);
    assert_eq!(c.compaction.strategies, ["summarize", "aggressive"]);
    assert_eq!(c.compaction.summarizer.command, "sh -c 'echo hi'");
    assert_eq!(c.compaction.summarizer.timeout_ms, 500);
    assert_eq!(
        c.compaction.summarizer.max_summary_tokens, 1000,
        "keys not given keep their default"
    );

    let f = write(tmp.path(), "[compaction.summarizer]\ncmd = \"x\"\n");
    let e = error_of(&f, &[], &[]);
    assert!(e.contains("unknown key compaction.summarizer.cmd"), "{e}");
    assert!(e.contains("command"), "should list the known keys: {e}");

    let f = write(tmp.path(), "[compaction]\nsummarizer = 3\n");
    let e = error_of(&f, &[], &[]);
    assert!(e.contains("compaction.summarizer must be a table"), "{e}");
}

#[test]
fn environment_overrides_including_nested_keys() {
    let env = env(&[
        ("AGENT_RELAY_COMPACTION_ENABLED", "true"),
        ("AGENT_RELAY_COMPACTION_THRESHOLD", "0.9"),
        ("AGENT_RELAY_COMPACTION_TOKENIZER", "heuristic"),
        ("AGENT_RELAY_COMPACTION_STRATEGIES", "[\"aggressive\"]"),
        (
            "AGENT_RELAY_COMPACTION_SUMMARIZER_COMMAND",
            "my-summariser --short",
        ),
        (
            "AGENT_RELAY_COMPACTION_SUMMARIZER_MAX_SUMMARY_TOKENS",
            "200",
        ),
    ]);
    let c = load_from(Path::new("/none"), &env, &[]).expect("loads");
    assert!(c.compaction.enabled);
    assert_eq!(c.compaction.threshold, 0.9);
    assert_eq!(c.compaction.tokenizer, "heuristic");
    assert_eq!(c.compaction.strategies, ["aggressive"]);
    assert_eq!(c.compaction.summarizer.command, "my-summariser --short");
    assert_eq!(c.compaction.summarizer.max_summary_tokens, 200);

    let bad = vec![(
        "AGENT_RELAY_COMPACTION_SUMMARIZER_TIMEOUT_MS".to_string(),
        "soon".to_string(),
    )];
    let e = error_of(Path::new("/none"), &bad, &[]);
    assert!(
        e.contains("AGENT_RELAY_COMPACTION_SUMMARIZER_TIMEOUT_MS") && e.contains("integer"),
        "{e}"
    );
}

#[test]
fn flags_win_and_reach_nested_keys() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let f = write(
        tmp.path(),
        "[compaction]\nmax_tokens = 5000\n[compaction.summarizer]\ntimeout_ms = 100\n",
    );
    let env = env(&[("AGENT_RELAY_COMPACTION_MAX_TOKENS", "6000")]);
    let overrides = flags(&[
        "compaction.enabled=true",
        "compaction.max_tokens=7000",
        "compaction.keep_recent=0",
        "compaction.summarizer.command=sh -c 'printf SUMMARY'",
        "compaction.summarizer.timeout_ms=2500",
    ]);
    let c = load_from(&f, &env, &overrides).expect("loads");
    assert!(c.compaction.enabled);
    assert_eq!(c.compaction.max_tokens, 7000, "flag > env > file");
    assert_eq!(c.compaction.keep_recent, 0);
    assert_eq!(c.compaction.summarizer.command, "sh -c 'printf SUMMARY'");
    assert_eq!(c.compaction.summarizer.timeout_ms, 2500);

    let e = error_of(
        Path::new("/none"),
        &[],
        &flags(&["compaction.summarizer.nope=1"]),
    );
    assert!(e.contains("unknown key compaction.summarizer.nope"), "{e}");
    let e = error_of(
        Path::new("/none"),
        &[],
        &flags(&["compaction.summarizer=x"]),
    );
    assert!(
        e.contains("compaction.summarizer is a table") && e.contains("compaction.summarizer."),
        "{e}"
    );
    let e = error_of(
        Path::new("/none"),
        &[],
        &flags(&["compaction.max_tokens=lots"]),
    );
    assert!(e.contains("override compaction.max_tokens=lots"), "{e}");
}

#[test]
fn validation_names_the_key_and_the_allowed_range() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["compaction.max_tokens=0"],
            "compaction.max_tokens must be at least 1",
        ),
        (
            &["compaction.threshold=1.5"],
            "compaction.threshold must be in (0, 1]",
        ),
        (
            &["compaction.threshold=0"],
            "compaction.threshold must be in (0, 1]",
        ),
        (
            &["compaction.target_usage=0.9"],
            "compaction.target_usage must be in (0, compaction.threshold) = (0, 0.8)",
        ),
        (
            &["compaction.max_tokens=1", "compaction.target_usage=0.5"],
            "compaction.target_usage × compaction.max_tokens must be at least 1 token",
        ),
        (
            &["compaction.min_importance=101"],
            "compaction.min_importance must be in 0..=100",
        ),
        (
            &["compaction.dedupe_similarity=0"],
            "compaction.dedupe_similarity must be in (0, 1]",
        ),
        (
            &["compaction.strategies=[\"summarise\"]"],
            "compaction.strategies contains unknown strategy \"summarise\"",
        ),
        (
            &["compaction.strategies=[\"summarize\", \"summarize\"]"],
            "compaction.strategies lists \"summarize\" more than once",
        ),
        (
            &["compaction.tokenizer=gpt2"],
            "compaction.tokenizer is \"gpt2\"",
        ),
        (
            &["compaction.max_history=0"],
            "compaction.max_history must be at least 1",
        ),
        (
            &["compaction.summarizer.timeout_ms=0"],
            "compaction.summarizer.timeout_ms must be at least 1",
        ),
        (
            &["compaction.summarizer.max_summary_tokens=8"],
            "compaction.summarizer.max_summary_tokens must be at least 16",
        ),
    ];
    for (list, expected) in cases {
        let e = error_of(Path::new("/none"), &[], &flags(list));
        assert!(
            e.contains(expected),
            "{list:?}: expected {expected:?} in {e}"
        );
        assert!(e.contains("invalid configuration"), "{e}");
    }
    // An empty strategy list could never compact anything.
    let e = error_of(
        Path::new("/none"),
        &[],
        &flags(&["compaction.strategies=[]"]),
    );
    assert!(e.contains("compaction.strategies is empty"), "{e}");
    let c = load_from(
        Path::new("/none"),
        &[],
        &flags(&["compaction.tokenizer=o200k_base"]),
    )
    .expect("loads");
    assert_eq!(c.compaction.tokenizer, "o200k_base");
}
