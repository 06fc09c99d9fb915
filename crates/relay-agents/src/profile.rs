//! The profile type and where profiles come from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The directory a profile was found in. The order of the variants is the
/// search (and precedence) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileSource {
    /// `<project>/.claude/agents/`: Claude Code's own agent directory.
    ClaudeAgents,
    /// `<project>/.openagents/`: the tool-neutral fallback.
    OpenAgents,
}

impl ProfileSource {
    /// Every source, in search order.
    pub const ALL: [ProfileSource; 2] = [ProfileSource::ClaudeAgents, ProfileSource::OpenAgents];

    /// The directory, relative to the project root, as displayed to users.
    pub fn dir_name(self) -> &'static str {
        match self {
            ProfileSource::ClaudeAgents => ".claude/agents",
            ProfileSource::OpenAgents => ".openagents",
        }
    }

    /// The directory under `project_root`.
    pub fn dir(self, project_root: &Path) -> PathBuf {
        match self {
            ProfileSource::ClaudeAgents => project_root.join(".claude").join("agents"),
            ProfileSource::OpenAgents => project_root.join(".openagents"),
        }
    }
}

impl fmt::Display for ProfileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir_name())
    }
}

/// One agent profile: a markdown file with optional YAML front matter.
///
/// String fields are trimmed; a field that is absent, null or blank is
/// `None` (or an empty list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentProfile {
    /// The front matter's `name`, else the file stem.
    pub name: String,
    /// The file name without its `.md` extension.
    pub file_stem: String,
    /// The file the profile was read from.
    pub path: PathBuf,
    /// The directory the file was found in.
    pub source: ProfileSource,
    /// `description`.
    pub description: Option<String>,
    /// `tools` and `allowed-tools` (also `allowedTools`, `allowed_tools`),
    /// each a comma-separated string or a YAML list; merged in that order,
    /// duplicates dropped.
    pub tools: Vec<String>,
    /// `model`.
    pub model: Option<String>,
    /// `role`.
    pub role: Option<String>,
    /// `agentType`, else `agent-type`, else `agent_type`, else `type`.
    pub agent_type: Option<String>,
    /// `skills`: a comma-separated string or a YAML list.
    pub skills: Vec<String>,
    /// `shadowRole` (also `shadow-role`, `shadow_role`).
    pub shadow_role: Option<String>,
    /// `shadowTriggers` (also `shadow-triggers`, `shadow_triggers`): a
    /// comma-separated string or a YAML list.
    pub shadow_triggers: Vec<String>,
    /// The markdown after the front matter (the whole file when there is
    /// none), trimmed, with CRLF line ends turned into LF.
    pub prompt: String,
    /// Every other front-matter key, converted to JSON.
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl AgentProfile {
    /// Whether `query` names this profile: it equals the front-matter name
    /// or the file stem, ignoring case.
    pub fn matches(&self, query: &str) -> bool {
        let query = fold(query);
        fold(&self.name) == query || fold(&self.file_stem) == query
    }

    /// Whether `query` equals the name or the file stem exactly.
    pub(crate) fn matches_exactly(&self, query: &str) -> bool {
        self.name == query || self.file_stem == query
    }

    /// The lower-cased names this profile answers to (name and stem).
    pub(crate) fn keys(&self) -> Vec<String> {
        let name = fold(&self.name);
        let stem = fold(&self.file_stem);
        if name == stem {
            vec![name]
        } else {
            vec![name, stem]
        }
    }
}

/// Case folding used for every name comparison.
pub(crate) fn fold(s: &str) -> String {
    s.trim().to_lowercase()
}
