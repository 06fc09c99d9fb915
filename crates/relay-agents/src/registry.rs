//! Scanning the profile directories and looking profiles up by name.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::{ProfileWarning, WarningKind};
use crate::parse::parse_profile_with_warnings;
use crate::profile::{AgentProfile, ProfileSource};

/// Profile files larger than this many bytes (1 MiB) are skipped.
pub const MAX_PROFILE_BYTES: u64 = 1024 * 1024;

/// Every profile of a project, read once by [`ProfileRegistry::discover`].
///
/// [`profiles`](ProfileRegistry::profiles) lists every file that parsed,
/// including those that share a name with another (each such pair is
/// reported in [`warnings`](ProfileRegistry::warnings));
/// [`find`](ProfileRegistry::find) decides between them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileRegistry {
    profiles: Vec<AgentProfile>,
    warnings: Vec<ProfileWarning>,
}

impl ProfileRegistry {
    /// Reads `<project_root>/.claude/agents/*.md`, then
    /// `<project_root>/.openagents/*.md` (not recursive).
    ///
    /// Never fails: a missing directory is simply empty, and everything
    /// else that goes wrong (an unreadable directory or file, a file over
    /// [`MAX_PROFILE_BYTES`], invalid front matter, a name collision, ...)
    /// becomes a [`ProfileWarning`]. Hidden files (`.x.md`), files not
    /// ending in `.md` and directories are ignored. Each file is read once;
    /// call `discover` again to see changes.
    pub fn discover(project_root: &Path) -> ProfileRegistry {
        let mut profiles = Vec::new();
        let mut warnings = Vec::new();
        for source in ProfileSource::ALL {
            scan_dir(
                source,
                &source.dir(project_root),
                &mut profiles,
                &mut warnings,
            );
        }
        let mut registry = ProfileRegistry::from_parts(profiles, warnings);
        registry.report_collisions();
        registry
    }

    /// A registry over profiles obtained elsewhere (for example from
    /// [`parse_profile`](crate::parse_profile)). They are sorted the same
    /// way as discovered ones and name collisions are reported.
    pub fn from_profiles(profiles: Vec<AgentProfile>) -> ProfileRegistry {
        let mut registry = ProfileRegistry::from_parts(profiles, Vec::new());
        registry.report_collisions();
        registry
    }

    fn from_parts(mut profiles: Vec<AgentProfile>, warnings: Vec<ProfileWarning>) -> Self {
        profiles.sort_by(|a, b| (a.source, &a.path).cmp(&(b.source, &b.path)));
        ProfileRegistry { profiles, warnings }
    }

    /// Every loaded profile, `.claude/agents` first, then by path.
    pub fn profiles(&self) -> &[AgentProfile] {
        &self.profiles
    }

    /// Every problem found, in the order found (directory scans in file
    /// name order, then name collisions).
    pub fn warnings(&self) -> &[ProfileWarning] {
        &self.warnings
    }

    /// Whether no profile was loaded.
    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    /// The profile called `name`: its front-matter name or its file stem
    /// equals `name`, ignoring case and surrounding blanks.
    ///
    /// When several match: a profile from `.claude/agents` wins over one
    /// from `.openagents`; then one whose name or stem has exactly the
    /// spelling of `name`; then the one with the smallest path.
    pub fn find(&self, name: &str) -> Option<&AgentProfile> {
        let query = name.trim();
        if query.is_empty() {
            return None;
        }
        self.profiles
            .iter()
            .filter(|p| p.matches(query))
            .min_by(|a, b| rank(a, query).cmp(&rank(b, query)))
    }

    fn report_collisions(&mut self) {
        let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, profile) in self.profiles.iter().enumerate() {
            for key in profile.keys() {
                by_key.entry(key).or_default().push(i);
            }
        }
        let mut reported: BTreeSet<(usize, usize)> = BTreeSet::new();
        let mut warnings = Vec::new();
        for (key, indices) in by_key {
            if indices.len() < 2 {
                continue;
            }
            let Some(winner) = indices
                .iter()
                .copied()
                .min_by(|&a, &b| rank(&self.profiles[a], &key).cmp(&rank(&self.profiles[b], &key)))
            else {
                continue;
            };
            for &loser in indices.iter().filter(|&&i| i != winner) {
                let pair = (winner.min(loser), winner.max(loser));
                if !reported.insert(pair) {
                    continue;
                }
                let (w, l) = (&self.profiles[winner], &self.profiles[loser]);
                let reason = if w.source != l.source {
                    format!("{} wins over {}", w.source, l.source)
                } else {
                    "in one directory an exact-case match of the looked-up name wins, then the \
                     smallest path"
                        .to_string()
                };
                warnings.push(ProfileWarning::new(
                    l.path.clone(),
                    WarningKind::NameCollision {
                        name: key.clone(),
                        winner: w.path.clone(),
                    },
                    format!(
                        "this file and {} both answer to the name `{key}` (names and file stems \
                         are compared ignoring case); `{key}` resolves to {} ({reason}); rename \
                         one of the files or give it a distinct `name:` in its front matter",
                        w.path.display(),
                        w.path.display(),
                    ),
                ));
            }
        }
        self.warnings.extend(warnings);
    }
}

/// Lower is better: source, then exact spelling, then path.
fn rank<'a>(profile: &'a AgentProfile, query: &str) -> (ProfileSource, bool, &'a Path) {
    (
        profile.source,
        !profile.matches_exactly(query),
        profile.path.as_path(),
    )
}

fn scan_dir(
    source: ProfileSource,
    dir: &Path,
    profiles: &mut Vec<AgentProfile>,
    warnings: &mut Vec<ProfileWarning>,
) {
    let dir_warning = |message: String| {
        ProfileWarning::new(dir.to_path_buf(), WarningKind::DirectoryUnreadable, message)
    };
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            warnings.push(dir_warning(format!(
                "{} exists but is not a directory, so no profile was read from it; replace it \
                 with a directory of `<agent-name>.md` files",
                source.dir_name()
            )));
            return;
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => return,
        Err(err) => {
            warnings.push(dir_warning(format!(
                "cannot inspect the profile directory ({err}), so no profile was read from it; \
                 check that it is a directory you can read"
            )));
            return;
        }
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            warnings.push(dir_warning(format!(
                "cannot list the profile directory ({err}), so no profile was read from it; \
                 check its permissions"
            )));
            return;
        }
    };

    let mut files: Vec<(String, PathBuf, bool)> = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let raw = entry.file_name();
                let utf8 = raw.to_str().is_some();
                let name = raw.to_string_lossy().into_owned();
                files.push((name, entry.path(), utf8));
            }
            Err(err) => warnings.push(dir_warning(format!(
                "an entry of the profile directory could not be read ({err}) and was skipped; \
                 check the directory's permissions"
            ))),
        }
    }
    files.sort();

    for (name, path, utf8) in files {
        if name.starts_with('.') || !name.ends_with(".md") {
            continue;
        }
        if !utf8 {
            warnings.push(ProfileWarning::new(
                path,
                WarningKind::NotUtf8,
                "the file name is not valid UTF-8, so the file was skipped; rename it to \
                 `<agent-name>.md` using plain characters",
            ));
            continue;
        }
        if let Some((profile, mut found)) = load_file(source, &path, warnings) {
            profiles.push(profile);
            warnings.append(&mut found);
        }
    }
}

fn load_file(
    source: ProfileSource,
    path: &Path,
    warnings: &mut Vec<ProfileWarning>,
) -> Option<(AgentProfile, Vec<ProfileWarning>)> {
    let unreadable = |message: String| {
        ProfileWarning::new(path.to_path_buf(), WarningKind::FileUnreadable, message)
    };
    let too_large = |size: u64| {
        ProfileWarning::new(
            path.to_path_buf(),
            WarningKind::FileTooLarge { size },
            format!(
                "the file is larger than {MAX_PROFILE_BYTES} bytes (1 MiB), so it was skipped; \
                 move long reference material out of the profile and keep the prompt short"
            ),
        )
    };

    // Follows symbolic links: a link to a profile is a profile.
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(err) => {
            warnings.push(unreadable(format!(
                "cannot inspect the file ({err}), so it was skipped; if it is a symbolic link, \
                 make it point to an existing file"
            )));
            return None;
        }
    };
    if meta.is_dir() {
        return None;
    }
    if !meta.is_file() {
        warnings.push(unreadable(
            "not a regular file (a pipe, socket or device), so it was skipped; replace it with \
             a plain markdown file"
                .to_string(),
        ));
        return None;
    }
    if meta.len() > MAX_PROFILE_BYTES {
        warnings.push(too_large(meta.len()));
        return None;
    }

    let mut bytes = Vec::new();
    let read = fs::File::open(path)
        .and_then(|file| file.take(MAX_PROFILE_BYTES + 1).read_to_end(&mut bytes));
    if let Err(err) = read {
        warnings.push(unreadable(format!(
            "cannot read the file ({err}), so it was skipped; check its permissions"
        )));
        return None;
    }
    // The file may have grown since it was inspected.
    if bytes.len() as u64 > MAX_PROFILE_BYTES {
        warnings.push(too_large(bytes.len() as u64));
        return None;
    }
    let contents = match String::from_utf8(bytes) {
        Ok(contents) => contents,
        Err(err) => {
            warnings.push(ProfileWarning::new(
                path.to_path_buf(),
                WarningKind::NotUtf8,
                format!(
                    "the file is not valid UTF-8 ({err}), so it was skipped; save it with UTF-8 \
                     encoding"
                ),
            ));
            return None;
        }
    };

    match parse_profile_with_warnings(path, source, &contents) {
        Ok(parsed) => Some(parsed),
        Err(err) => {
            let message = err.to_string();
            warnings.push(ProfileWarning::new(
                path.to_path_buf(),
                WarningKind::Invalid(err),
                message,
            ));
            None
        }
    }
}
