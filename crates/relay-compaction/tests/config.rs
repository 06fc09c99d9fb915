//! Configuration: defaults, serde, validation errors.

use relay_compaction::{
    CompactionConfig, CompactionError, Compactor, Strategy, SummarizerConfig, TokenizerMode,
};

fn parse(json: &str) -> Result<CompactionConfig, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

fn invalid(config: CompactionConfig) -> String {
    match config.validate() {
        Ok(()) => panic!("config was accepted: {config:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults() {
    let c = CompactionConfig::default();
    assert!(!c.enabled);
    assert_eq!(c.max_tokens, 100_000);
    assert_eq!(c.threshold, 0.8);
    assert_eq!(c.target_usage, 0.5);
    assert_eq!(c.keep_recent, 10);
    assert_eq!(c.min_importance, 30);
    assert_eq!(c.strategies, Strategy::ALL.to_vec());
    assert_eq!(c.tokenizer, TokenizerMode::Tokenizer);
    assert_eq!(c.summarizer.command, None);
    assert_eq!(c.summarizer.timeout_ms, 10_000);
    assert_eq!(c.summarizer.max_summary_tokens, 1_000);
    assert_eq!(c.max_history, 10_000);
    assert_eq!(c.threshold_tokens(), 80_000);
    assert_eq!(c.target_tokens(), 50_000);
    c.validate().expect("defaults are valid");
    assert_eq!(parse("{}").expect("empty config"), c);
}

#[test]
fn deserialises_every_field() {
    let c = parse(
        r#"{
            "enabled": true,
            "max_tokens": 50000,
            "threshold": 0.9,
            "target_usage": 0.6,
            "keep_recent": 0,
            "min_importance": 40,
            "dedupe_similarity": 0.9,
            "strategies": ["summarize", "aggressive"],
            "tokenizer": "heuristic",
            "summarizer": {"command": "llm-summarize --max 200", "timeout_ms": 5000, "max_summary_tokens": 500},
            "max_history": 2000
        }"#,
    )
    .expect("valid config");
    assert!(c.enabled);
    assert_eq!(c.keep_recent, 0);
    assert_eq!(
        c.strategies,
        vec![Strategy::Summarize, Strategy::Aggressive]
    );
    assert_eq!(c.tokenizer, TokenizerMode::Heuristic);
    assert_eq!(
        c.summarizer.argv().expect("parsable"),
        Some(vec![
            "llm-summarize".to_owned(),
            "--max".to_owned(),
            "200".to_owned()
        ])
    );
    c.validate().expect("valid");
    // Round trip.
    let json = serde_json::to_string(&c).expect("serialisable");
    assert_eq!(parse(&json).expect("round trip"), c);
    assert!(json.contains(r#""tokenizer":"heuristic""#));
    assert!(json.contains(r#""strategies":["summarize","aggressive"]"#));
    assert_eq!(
        parse(r#"{"tokenizer": "o200k"}"#).map(|c| c.tokenizer),
        Ok(TokenizerMode::Tokenizer)
    );
}

#[test]
fn unknown_names_are_rejected_with_the_choices() {
    let e = parse(r#"{"strategies": ["dedupe"]}"#).expect_err("unknown strategy");
    assert!(e.contains("unknown strategy \"dedupe\""), "{e}");
    assert!(e.contains("trim_low_importance"), "{e}");
    let e = parse(r#"{"tokenizer": "gpt2"}"#).expect_err("unknown tokenizer");
    assert!(e.contains("`tokenizer`") && e.contains("heuristic"), "{e}");
    let e = parse(r#"{"max_tokenz": 5}"#).expect_err("typo");
    assert!(e.contains("max_tokenz"), "{e}");
}

#[test]
fn each_range_error_names_its_field() {
    let base = CompactionConfig::default;
    let cases: Vec<(CompactionConfig, &str)> = vec![
        (
            CompactionConfig {
                max_tokens: 0,
                ..base()
            },
            "`max_tokens`",
        ),
        (
            CompactionConfig {
                threshold: 0.0,
                ..base()
            },
            "`threshold`",
        ),
        (
            CompactionConfig {
                threshold: 1.5,
                ..base()
            },
            "`threshold`",
        ),
        (
            CompactionConfig {
                threshold: f64::NAN,
                ..base()
            },
            "`threshold`",
        ),
        (
            CompactionConfig {
                target_usage: 0.0,
                ..base()
            },
            "`target_usage`",
        ),
        (
            CompactionConfig {
                target_usage: 0.8,
                ..base()
            },
            "`target_usage`",
        ),
        (
            CompactionConfig {
                target_usage: 0.9,
                ..base()
            },
            "`target_usage`",
        ),
        (
            CompactionConfig {
                max_tokens: 1,
                target_usage: 0.5,
                ..base()
            },
            "`target_usage`",
        ),
        (
            CompactionConfig {
                min_importance: 101,
                ..base()
            },
            "`min_importance`",
        ),
        (
            CompactionConfig {
                dedupe_similarity: 0.0,
                ..base()
            },
            "`dedupe_similarity`",
        ),
        (
            CompactionConfig {
                summarizer: SummarizerConfig {
                    timeout_ms: 0,
                    ..SummarizerConfig::default()
                },
                ..base()
            },
            "`summarizer.timeout_ms`",
        ),
        (
            CompactionConfig {
                summarizer: SummarizerConfig {
                    max_summary_tokens: 3,
                    ..SummarizerConfig::default()
                },
                ..base()
            },
            "`summarizer.max_summary_tokens`",
        ),
        (
            CompactionConfig {
                max_history: 0,
                ..base()
            },
            "`max_history`",
        ),
    ];
    for (config, field) in cases {
        let e = invalid(config);
        assert!(e.contains(field), "{field}: {e}");
        assert!(e.contains("must be"), "{e}");
    }
}

#[test]
fn duplicate_strategies_are_rejected() {
    let e = invalid(CompactionConfig {
        strategies: vec![
            Strategy::Summarize,
            Strategy::Aggressive,
            Strategy::Summarize,
        ],
        ..CompactionConfig::default()
    });
    assert!(e.contains("\"summarize\" more than once"), "{e}");
}

#[test]
fn an_empty_strategy_list_is_valid_and_reports_cannot_reach() {
    let c = CompactionConfig {
        strategies: vec![],
        ..CompactionConfig::default()
    };
    c.validate().expect("valid: compaction then only reports");
}

#[test]
fn bad_summarizer_commands_are_rejected() {
    for command in ["summarize 'unterminated", "", "   "] {
        let config = CompactionConfig {
            summarizer: SummarizerConfig {
                command: Some(command.to_owned()),
                ..SummarizerConfig::default()
            },
            ..CompactionConfig::default()
        };
        let e = invalid(config.clone());
        assert!(e.contains("`summarizer.command`"), "{e}");
        assert!(matches!(
            Compactor::new(config),
            Err(CompactionError::BadSummarizerCommand { .. })
        ));
    }
}

#[test]
fn compactor_new_validates() {
    let err = Compactor::new(CompactionConfig {
        threshold: 2.0,
        ..CompactionConfig::default()
    })
    .expect_err("invalid threshold");
    assert!(matches!(
        err,
        CompactionError::OutOfRange {
            field: "threshold",
            ..
        }
    ));
}
