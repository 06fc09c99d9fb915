//! Project discovery and the `.agent-relay/` layout.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Name of the per-project state directory.
pub const RELAY_DIR: &str = ".agent-relay";

const MARKERS: &[&str] = &[
    ".git",
    "Cargo.toml",
    "package.json",
    "go.mod",
    "pyproject.toml",
    RELAY_DIR,
];

/// The nearest ancestor of `start` (itself included) holding a project marker, else `start`.
pub fn find_project_root(start: &Path) -> PathBuf {
    let mut dir = Some(start);
    while let Some(d) = dir {
        if MARKERS.iter().any(|m| d.join(m).exists()) {
            return d.to_path_buf();
        }
        dir = d.parent();
    }
    start.to_path_buf()
}

/// Every path the daemon and the CLI use for one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectPaths {
    pub root: PathBuf,
    pub relay_dir: PathBuf,
    pub config_file: PathBuf,
    pub default_socket: PathBuf,
    pub default_database: PathBuf,
    pub logs_dir: PathBuf,
    pub daemon_log: PathBuf,
    pub lock_file: PathBuf,
}

impl ProjectPaths {
    pub fn for_root(root: impl Into<PathBuf>) -> ProjectPaths {
        let root = root.into();
        let relay_dir = root.join(RELAY_DIR);
        ProjectPaths {
            config_file: relay_dir.join("relay.toml"),
            default_socket: relay_dir.join("relay.sock"),
            default_database: relay_dir.join("messages.sqlite"),
            logs_dir: relay_dir.join("logs"),
            daemon_log: relay_dir.join("daemon.log"),
            lock_file: relay_dir.join("daemon.lock"),
            relay_dir,
            root,
        }
    }

    /// Discovers the project from a working directory.
    pub fn discover(cwd: &Path) -> ProjectPaths {
        ProjectPaths::for_root(find_project_root(cwd))
    }

    /// The pid file that goes with a socket path.
    pub fn pid_file_for(socket: &Path) -> PathBuf {
        let mut name = socket.as_os_str().to_os_string();
        name.push(".pid");
        PathBuf::from(name)
    }

    /// Resolves a configured path: relative paths are relative to the project root.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }
}

/// Creates `dir` with mode 0700 if missing (tightening an existing one), and on first creation
/// inside a git checkout adds it to `.git/info/exclude` so state never gets committed.
pub fn ensure_relay_dir(dir: &Path) -> io::Result<()> {
    let created = !dir.exists();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    if created {
        if let Some(root) = dir.parent() {
            exclude_from_git(root, dir)?;
        }
    }
    Ok(())
}

fn exclude_from_git(root: &Path, dir: &Path) -> io::Result<()> {
    let git = root.join(".git");
    if !git.is_dir() {
        return Ok(());
    }
    let Some(name) = dir.file_name().and_then(|n| n.to_str()) else {
        return Ok(());
    };
    let entry = format!("{name}/");
    let info = git.join("info");
    fs::create_dir_all(&info)?;
    let exclude = info.join("exclude");
    let current = fs::read_to_string(&exclude).unwrap_or_default();
    if current
        .lines()
        .any(|l| l.trim() == entry || l.trim() == name)
    {
        return Ok(());
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&exclude)?;
    if !current.is_empty() && !current.ends_with('\n') {
        writeln!(f)?;
    }
    writeln!(f, "{entry}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_marker() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("proj");
        let deep = root.join("a/b/c");
        fs::create_dir_all(&deep).unwrap();
        fs::write(root.join("Cargo.toml"), "").unwrap();
        assert_eq!(find_project_root(&deep), root);
        let paths = ProjectPaths::discover(&deep);
        assert_eq!(paths.default_socket, root.join(".agent-relay/relay.sock"));
        assert_eq!(
            ProjectPaths::pid_file_for(&paths.default_socket),
            root.join(".agent-relay/relay.sock.pid")
        );
    }

    #[test]
    fn relay_dir_is_private_and_git_excluded_once() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join(".git/info")).unwrap();
        fs::write(tmp.path().join(".git/info/exclude"), "# existing").unwrap();
        let dir = tmp.path().join(RELAY_DIR);
        ensure_relay_dir(&dir).unwrap();
        ensure_relay_dir(&dir).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let exclude = fs::read_to_string(tmp.path().join(".git/info/exclude")).unwrap();
        assert_eq!(exclude, "# existing\n.agent-relay/\n");
    }
}
