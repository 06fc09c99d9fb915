//! Errors (a file that cannot be used as a profile) and warnings (anything a
//! user should fix, whether or not the file was skipped).

use std::fmt;
use std::path::PathBuf;

/// Why a file could not be turned into an [`AgentProfile`](crate::AgentProfile).
///
/// Every message names the file, says what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The file starts with a `---` line but no closing `---` (or `...`)
    /// line follows.
    #[error(
        "{}: the front matter opened by the `---` on line 1 is never closed; add a line \
         containing only `---` after the last front-matter field (or delete the first line \
         if the file has no front matter)",
        path.display()
    )]
    UnclosedFrontMatter {
        /// The profile file.
        path: PathBuf,
    },

    /// The front matter is not valid YAML.
    #[error(
        "{}: invalid YAML in the front matter{}: {message}; fix the syntax there (quote \
         values that contain `: ` or ` #`, or that start with `*`, `&`, `!`, `@`, `[`, `{{` \
         or a quote)",
        path.display(),
        position_suffix(*line, *column)
    )]
    InvalidYaml {
        /// The profile file.
        path: PathBuf,
        /// 1-based line in the file (the opening `---` is line 1), when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// The YAML parser's description of the problem.
        message: String,
    },

    /// The front matter is valid YAML but not a mapping (for example a
    /// list or a bare string).
    #[error(
        "{}: the front matter is {found}, not a mapping; write one `key: value` field per \
         line, for example `name: code-reviewer`",
        path.display()
    )]
    FrontMatterNotMapping {
        /// The profile file.
        path: PathBuf,
        /// What was found instead (`a list`, `a string`, ...).
        found: String,
    },

    /// Neither the front matter nor the file name gives the agent a name.
    #[error(
        "{}: the agent has no name (the file name has no stem and the front matter sets no \
         `name`); rename the file to `<agent-name>.md` or add `name: <agent-name>`",
        path.display()
    )]
    MissingName {
        /// The profile file.
        path: PathBuf,
    },
}

fn position_suffix(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" at line {line}, column {column}"),
        (Some(line), None) => format!(" at line {line}"),
        _ => String::new(),
    }
}

/// What a [`ProfileWarning`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// A profile directory exists but could not be listed (or is not a
    /// directory). Nothing in it was loaded.
    DirectoryUnreadable,
    /// A profile file could not be opened or read. It was skipped.
    FileUnreadable,
    /// A profile file is larger than [`MAX_PROFILE_BYTES`](crate::MAX_PROFILE_BYTES).
    /// It was skipped.
    FileTooLarge {
        /// The file's size in bytes (at least the limit plus one).
        size: u64,
    },
    /// A profile file (or its name) is not valid UTF-8. It was skipped.
    NotUtf8,
    /// The file could not be parsed. It was skipped.
    Invalid(ProfileError),
    /// A field has a value of the wrong type (for example a number or a
    /// list where a string is expected). The profile was loaded; the value
    /// was converted when that is unambiguous, otherwise ignored.
    FieldType {
        /// The front-matter key.
        key: String,
    },
    /// Two spellings of the same field (say `agentType` and `type`) have
    /// different values. The first key listed won.
    ConflictingKeys {
        /// The keys involved, the one that won first.
        keys: Vec<String>,
    },
    /// The file's first non-blank line is `---` but the file does not start
    /// with it, so it was read as a profile without front matter.
    FrontMatterNotAtStart,
    /// Two profiles answer to the same case-insensitive name (front-matter
    /// name or file stem). Both were loaded;
    /// [`ProfileRegistry::find`](crate::ProfileRegistry::find) decides
    /// between them. The warning's `path` is the file that loses a lookup of
    /// the lower-cased name, `winner` the one that wins it. One warning is
    /// given per pair of files.
    NameCollision {
        /// The shared name, lower-cased.
        name: String,
        /// The file that wins.
        winner: PathBuf,
    },
}

/// Something wrong with a profile file or directory: which one, what is
/// wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileWarning {
    /// The file or directory concerned.
    pub path: PathBuf,
    /// What kind of problem this is.
    pub kind: WarningKind,
    /// What is wrong and how to fix it, in one sentence.
    pub message: String,
}

impl ProfileWarning {
    pub(crate) fn new(path: PathBuf, kind: WarningKind, message: impl Into<String>) -> Self {
        ProfileWarning {
            path,
            kind,
            message: message.into(),
        }
    }

    /// Whether the file concerned was skipped (not loaded as a profile).
    pub fn skipped(&self) -> bool {
        matches!(
            self.kind,
            WarningKind::DirectoryUnreadable
                | WarningKind::FileUnreadable
                | WarningKind::FileTooLarge { .. }
                | WarningKind::NotUtf8
                | WarningKind::Invalid(_)
        )
    }
}

impl fmt::Display for ProfileWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let WarningKind::Invalid(err) = &self.kind {
            // The error already names the file.
            return write!(f, "{err}");
        }
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}
