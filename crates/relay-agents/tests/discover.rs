//! Discovery over real directories, lookup and collisions.

use std::fs;
use std::path::{Path, PathBuf};

use relay_agents::{
    parse_profile, ProfileError, ProfileRegistry, ProfileSource, WarningKind, MAX_PROFILE_BYTES,
};
use tempfile::TempDir;

const CLAUDE: &str = ".claude/agents";
const OPEN: &str = ".openagents";

fn project() -> TempDir {
    match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => panic!("cannot create a temporary directory: {err}"),
    }
}

fn write(root: &Path, dir: &str, file: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let dir = root.join(dir);
    if let Err(err) = fs::create_dir_all(&dir) {
        panic!("cannot create {}: {err}", dir.display());
    }
    let path = dir.join(file);
    if let Err(err) = fs::write(&path, contents) {
        panic!("cannot write {}: {err}", path.display());
    }
    path
}

fn names(registry: &ProfileRegistry) -> Vec<String> {
    registry.profiles().iter().map(|p| p.name.clone()).collect()
}

fn found_path(registry: &ProfileRegistry, name: &str) -> Option<PathBuf> {
    registry.find(name).map(|p| p.path.clone())
}

#[test]
fn missing_directories_give_an_empty_registry_without_warnings() {
    let root = project();
    let registry = ProfileRegistry::discover(root.path());
    assert!(registry.is_empty());
    assert!(registry.profiles().is_empty());
    assert!(registry.warnings().is_empty());
    assert!(registry.find("anything").is_none());

    let registry = ProfileRegistry::discover(&root.path().join("does-not-exist"));
    assert!(registry.is_empty());
    assert!(registry.warnings().is_empty());

    // `.claude` without `agents` is still nothing to report.
    fs::create_dir_all(root.path().join(".claude")).ok();
    assert!(ProfileRegistry::discover(root.path()).warnings().is_empty());
}

#[test]
fn finds_claude_agents_and_reads_fields() {
    let root = project();
    let path = write(
        root.path(),
        CLAUDE,
        "reviewer.md",
        "---\nname: reviewer\nmodel: opus\ndescription: Reviews code\n---\nReview.\n",
    );
    let registry = ProfileRegistry::discover(root.path());
    assert!(registry.warnings().is_empty(), "{:?}", registry.warnings());
    let Some(p) = registry.find("reviewer") else {
        panic!("reviewer not found");
    };
    assert_eq!(p.path, path);
    assert_eq!(p.source, ProfileSource::ClaudeAgents);
    assert_eq!(p.model.as_deref(), Some("opus"));
    assert_eq!(p.description.as_deref(), Some("Reviews code"));
    assert_eq!(p.prompt, "Review.");
    assert!(registry.find("nobody").is_none());
    assert!(registry.find("").is_none());
    assert!(registry.find("   ").is_none());
}

#[test]
fn open_agents_is_the_fallback() {
    let root = project();
    write(
        root.path(),
        OPEN,
        "planner.md",
        "---\nrole: planner\n---\nPlan.\n",
    );
    write(root.path(), CLAUDE, "coder.md", "Code.\n");
    let registry = ProfileRegistry::discover(root.path());
    assert_eq!(names(&registry), ["coder", "planner"]);
    let Some(p) = registry.find("planner") else {
        panic!("planner not found");
    };
    assert_eq!(p.source, ProfileSource::OpenAgents);
    assert_eq!(p.role.as_deref(), Some("planner"));
    assert!(registry.warnings().is_empty());
}

#[test]
fn find_is_case_insensitive_on_name_and_stem() {
    let root = project();
    write(
        root.path(),
        CLAUDE,
        "MyAgent.md",
        "---\nname: Special-Helper\n---\n",
    );
    write(root.path(), CLAUDE, "plain.md", "Plain.");
    let registry = ProfileRegistry::discover(root.path());

    for query in [
        "myagent",
        "MYAGENT",
        "MyAgent",
        "special-helper",
        "SPECIAL-HELPER",
        " myagent ",
    ] {
        let found = registry.find(query).map(|p| p.name.as_str());
        assert_eq!(found, Some("Special-Helper"), "query {query:?}");
    }
    assert_eq!(
        registry.find("PLAIN").map(|p| p.file_stem.as_str()),
        Some("plain")
    );
}

#[test]
fn claude_agents_win_collisions_with_open_agents() {
    let root = project();
    let open = write(root.path(), OPEN, "Reviewer.md", "---\nmodel: gpt\n---\n");
    let claude = write(
        root.path(),
        CLAUDE,
        "reviewer.md",
        "---\nmodel: opus\n---\n",
    );
    let registry = ProfileRegistry::discover(root.path());

    assert_eq!(registry.profiles().len(), 2, "both are kept");
    // Even the exact spelling of the `.openagents` file loses.
    for query in ["reviewer", "Reviewer", "REVIEWER"] {
        assert_eq!(
            found_path(&registry, query).as_ref(),
            Some(&claude),
            "{query}"
        );
    }

    assert_eq!(registry.warnings().len(), 1, "{:?}", registry.warnings());
    let warning = &registry.warnings()[0];
    assert_eq!(warning.path, open);
    assert_eq!(
        warning.kind,
        WarningKind::NameCollision {
            name: "reviewer".to_string(),
            winner: claude.clone()
        }
    );
    let text = warning.to_string();
    assert!(text.contains(&open.display().to_string()), "{text}");
    assert!(text.contains(&claude.display().to_string()), "{text}");
    assert!(
        text.contains(".claude/agents wins over .openagents"),
        "{text}"
    );
    assert!(text.contains("rename"), "{text}");
}

#[test]
fn collisions_within_a_directory_prefer_exact_case_then_smallest_path() {
    let root = project();
    let upper = write(root.path(), CLAUDE, "Tester.md", "Upper.");
    let lower = write(root.path(), CLAUDE, "tester.md", "Lower.");
    let named = write(
        root.path(),
        CLAUDE,
        "zz.md",
        "---\nname: TESTER\n---\nNamed.",
    );
    let registry = ProfileRegistry::discover(root.path());

    assert_eq!(found_path(&registry, "Tester").as_ref(), Some(&upper));
    assert_eq!(found_path(&registry, "tester").as_ref(), Some(&lower));
    assert_eq!(found_path(&registry, "TESTER").as_ref(), Some(&named));
    // No exact match: the smallest path ("Tester.md" < "tester.md" < "zz.md").
    assert_eq!(found_path(&registry, "tEsTeR").as_ref(), Some(&upper));

    let collisions: Vec<_> = registry
        .warnings()
        .iter()
        .filter_map(|w| match &w.kind {
            WarningKind::NameCollision { name, winner } => {
                Some((w.path.clone(), name.clone(), winner.clone()))
            }
            _ => None,
        })
        .collect();
    // The lower-case name is spelled exactly like `tester.md`, which wins
    // that lookup; both other files are reported against it.
    assert_eq!(
        collisions,
        [
            (upper.clone(), "tester".to_string(), lower.clone()),
            (named.clone(), "tester".to_string(), lower.clone()),
        ]
    );
    assert_eq!(registry.warnings().len(), 2);
    assert!(registry.warnings()[0].message.contains("exact-case"));
}

#[test]
fn a_name_that_equals_another_files_stem_is_a_collision() {
    let root = project();
    let renamed = write(root.path(), CLAUDE, "a.md", "---\nname: helper\n---\n");
    let helper = write(
        root.path(),
        CLAUDE,
        "helper.md",
        "---\nname: assistant\n---\n",
    );
    let registry = ProfileRegistry::discover(root.path());
    // Both are exact matches for "helper": the smallest path wins.
    assert_eq!(found_path(&registry, "helper").as_ref(), Some(&renamed));
    assert_eq!(found_path(&registry, "assistant").as_ref(), Some(&helper));
    assert_eq!(found_path(&registry, "a").as_ref(), Some(&renamed));
    assert_eq!(registry.warnings().len(), 1);
    assert_eq!(registry.warnings()[0].path, helper);
}

#[test]
fn collision_pairs_are_reported_once() {
    let root = project();
    // Each file's name is the other's stem.
    write(root.path(), CLAUDE, "x.md", "---\nname: y\n---\n");
    write(root.path(), CLAUDE, "y.md", "---\nname: x\n---\n");
    let registry = ProfileRegistry::discover(root.path());
    assert_eq!(registry.warnings().len(), 1, "{:?}", registry.warnings());
}

#[test]
fn hidden_non_markdown_and_nested_files_are_ignored() {
    let root = project();
    write(root.path(), CLAUDE, ".hidden.md", "Hidden.");
    write(root.path(), CLAUDE, "notes.txt", "Not a profile.");
    write(root.path(), CLAUDE, "agent.md.bak", "Backup.");
    write(root.path(), CLAUDE, "README", "Readme.");
    write(root.path(), CLAUDE, "UPPER.MD", "Wrong case extension.");
    write(
        root.path(),
        &format!("{CLAUDE}/roles"),
        "nested.md",
        "Nested.",
    );
    write(
        root.path(),
        &format!("{CLAUDE}/dir.md"),
        "inner.md",
        "Inside a dir named *.md.",
    );
    write(root.path(), CLAUDE, "real.md", "Real.");
    let registry = ProfileRegistry::discover(root.path());
    assert_eq!(names(&registry), ["real"]);
    assert!(registry.warnings().is_empty(), "{:?}", registry.warnings());
}

#[test]
fn broken_files_are_skipped_with_warnings_and_the_rest_load() {
    let root = project();
    let unclosed = write(
        root.path(),
        CLAUDE,
        "unclosed.md",
        "---\nname: unclosed\nBody\n",
    );
    let invalid = write(
        root.path(),
        CLAUDE,
        "invalid.md",
        "---\nname: invalid\ntools: [Read\nmodel: opus\n---\n",
    );
    write(
        root.path(),
        CLAUDE,
        "good.md",
        "---\nname: good\n---\nGood.",
    );
    let registry = ProfileRegistry::discover(root.path());

    assert_eq!(names(&registry), ["good"]);
    assert!(registry.find("unclosed").is_none());
    assert!(registry.find("invalid").is_none());

    let warnings = registry.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    // Scanned in file name order.
    assert_eq!(warnings[0].path, invalid);
    assert!(warnings[0].skipped());
    let WarningKind::Invalid(ProfileError::InvalidYaml { line, column, .. }) = &warnings[0].kind
    else {
        panic!("expected invalid YAML, got {:?}", warnings[0]);
    };
    assert!(line.is_some() && column.is_some(), "{:?}", warnings[0]);
    let shown = warnings[0].to_string();
    assert!(shown.contains("invalid.md"), "{shown}");
    assert!(shown.contains("at line"), "{shown}");

    assert_eq!(warnings[1].path, unclosed);
    assert!(matches!(
        warnings[1].kind,
        WarningKind::Invalid(ProfileError::UnclosedFrontMatter { .. })
    ));
    assert!(warnings[1].to_string().contains("never closed"));
}

#[test]
fn suspicious_values_load_with_a_warning() {
    let root = project();
    let path = write(root.path(), CLAUDE, "numeric.md", "---\nmodel: 4\n---\n");
    let registry = ProfileRegistry::discover(root.path());
    assert_eq!(
        registry.find("numeric").and_then(|p| p.model.as_deref()),
        Some("4")
    );
    assert_eq!(registry.warnings().len(), 1);
    let warning = &registry.warnings()[0];
    assert_eq!(warning.path, path);
    assert!(!warning.skipped());
    assert_eq!(
        warning.kind,
        WarningKind::FieldType {
            key: "model".to_string()
        }
    );
}

#[test]
fn files_over_the_size_limit_are_skipped() {
    let root = project();
    let limit = usize::try_from(MAX_PROFILE_BYTES).unwrap_or(usize::MAX);
    let mut at_limit = b"---\nname: at-limit\n---\n".to_vec();
    at_limit.resize(limit, b'x');
    write(root.path(), CLAUDE, "at-limit.md", &at_limit);
    let mut too_big = b"---\nname: huge\n---\n".to_vec();
    too_big.resize(limit + 1, b'x');
    let huge = write(root.path(), CLAUDE, "huge.md", &too_big);

    let registry = ProfileRegistry::discover(root.path());
    assert_eq!(names(&registry), ["at-limit"]);
    assert_eq!(registry.warnings().len(), 1);
    assert_eq!(registry.warnings()[0].path, huge);
    assert_eq!(
        registry.warnings()[0].kind,
        WarningKind::FileTooLarge {
            size: MAX_PROFILE_BYTES + 1
        }
    );
    assert!(registry.warnings()[0].message.contains("1 MiB"));
}

#[test]
fn non_utf8_files_are_skipped() {
    let root = project();
    let bad = write(
        root.path(),
        CLAUDE,
        "latin1.md",
        b"---\nname: caf\xe9\n---\n",
    );
    let registry = ProfileRegistry::discover(root.path());
    assert!(registry.is_empty());
    assert_eq!(registry.warnings().len(), 1);
    assert_eq!(registry.warnings()[0].path, bad);
    assert_eq!(registry.warnings()[0].kind, WarningKind::NotUtf8);
    assert!(registry.warnings()[0].message.contains("UTF-8"));
}

#[test]
fn a_profile_directory_that_is_a_file_is_reported() {
    let root = project();
    if let Err(err) = fs::write(root.path().join(".openagents"), "oops") {
        panic!("{err}");
    }
    write(root.path(), CLAUDE, "ok.md", "Ok.");
    let registry = ProfileRegistry::discover(root.path());
    assert_eq!(names(&registry), ["ok"]);
    assert_eq!(registry.warnings().len(), 1);
    assert_eq!(
        registry.warnings()[0].kind,
        WarningKind::DirectoryUnreadable
    );
    assert!(registry.warnings()[0].message.contains("not a directory"));
}

#[cfg(unix)]
#[test]
fn symlinks_are_followed_and_broken_ones_reported() {
    let root = project();
    let target = write(
        root.path(),
        "shared",
        "base.md",
        "---\nmodel: opus\n---\nShared.",
    );
    let agents = root.path().join(CLAUDE);
    fs::create_dir_all(&agents).ok();
    if let Err(err) = std::os::unix::fs::symlink(&target, agents.join("linked.md")) {
        panic!("{err}");
    }
    if let Err(err) =
        std::os::unix::fs::symlink(root.path().join("missing.md"), agents.join("dangling.md"))
    {
        panic!("{err}");
    }
    let registry = ProfileRegistry::discover(root.path());
    assert_eq!(names(&registry), ["linked"]);
    assert_eq!(
        registry.find("linked").and_then(|p| p.model.as_deref()),
        Some("opus")
    );
    assert_eq!(registry.warnings().len(), 1);
    assert_eq!(registry.warnings()[0].kind, WarningKind::FileUnreadable);
    assert!(registry.warnings()[0].path.ends_with("dangling.md"));
}

#[test]
fn order_is_deterministic_and_rediscovery_sees_changes() {
    let root = project();
    for name in ["delta", "alpha", "Charlie", "bravo"] {
        write(root.path(), CLAUDE, &format!("{name}.md"), "x");
    }
    write(root.path(), OPEN, "aardvark.md", "x");
    let first = ProfileRegistry::discover(root.path());
    assert_eq!(
        names(&first),
        ["Charlie", "alpha", "bravo", "delta", "aardvark"]
    );
    assert_eq!(ProfileRegistry::discover(root.path()), first);

    write(root.path(), CLAUDE, "alpha.md", "---\nmodel: haiku\n---\n");
    assert!(first
        .find("alpha")
        .and_then(|p| p.model.as_deref())
        .is_none());
    let second = ProfileRegistry::discover(root.path());
    assert_eq!(
        second.find("alpha").and_then(|p| p.model.as_deref()),
        Some("haiku")
    );
}

#[test]
fn registry_from_parsed_profiles() {
    let parsed = [
        (
            ".openagents/a.md",
            ProfileSource::OpenAgents,
            "---\nname: dup\n---\n",
        ),
        (
            ".claude/agents/b.md",
            ProfileSource::ClaudeAgents,
            "---\nname: DUP\n---\n",
        ),
    ]
    .into_iter()
    .filter_map(|(path, source, text)| parse_profile(Path::new(path), source, text).ok())
    .collect();
    let registry = ProfileRegistry::from_profiles(parsed);
    assert_eq!(registry.profiles()[0].source, ProfileSource::ClaudeAgents);
    assert_eq!(
        registry.find("dup").map(|p| p.file_stem.as_str()),
        Some("b")
    );
    assert_eq!(registry.warnings().len(), 1);
}
