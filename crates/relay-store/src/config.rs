//! Store configuration.

use std::path::PathBuf;
use std::time::Duration;

/// Default number of writes that may wait in the queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 65_536;
/// Default maximum number of writes committed in one transaction.
pub const DEFAULT_MAX_BATCH: usize = 4096;
/// Default message bound of the in-memory backend.
pub const DEFAULT_MEMORY_MAX_MESSAGES: usize = 100_000;
/// Default retention for delivered messages: 7 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Default interval between retention passes: 1 hour.
pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// Which backend to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// A SQLite database file. Its parent directory is created (mode 0700)
    /// when missing, and a new database file is created with mode 0600.
    Sqlite { path: PathBuf },
    /// Volatile in-process storage holding at most `max_messages` messages.
    /// See [`MemoryBackend`](crate::MemoryBackend) for the overflow policy.
    Memory { max_messages: usize },
}

impl BackendConfig {
    /// In-memory backend with the default bound.
    pub fn memory() -> Self {
        BackendConfig::Memory {
            max_messages: DEFAULT_MEMORY_MAX_MESSAGES,
        }
    }

    /// SQLite backend at `path`.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        BackendConfig::Sqlite { path: path.into() }
    }
}

/// Everything [`Store::open`](crate::Store::open) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub backend: BackendConfig,
    /// Writes that may wait for the writer thread before
    /// [`StoreHandle::write`](crate::StoreHandle::write) reports
    /// [`Overloaded`](crate::StoreError::Overloaded). Default 65 536.
    pub queue_capacity: usize,
    /// Maximum writes committed in one transaction. Default 4096.
    pub max_batch: usize,
    /// Delete non-pending messages older than this; `None` keeps everything.
    /// Default 7 days.
    pub retention: Option<Duration>,
    /// How often the retention pass runs (it also runs once at open).
    /// Default 1 hour.
    pub cleanup_interval: Duration,
}

impl StoreConfig {
    /// Defaults with the given backend.
    pub fn new(backend: BackendConfig) -> Self {
        StoreConfig {
            backend,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_batch: DEFAULT_MAX_BATCH,
            retention: Some(DEFAULT_RETENTION),
            cleanup_interval: DEFAULT_CLEANUP_INTERVAL,
        }
    }

    /// Defaults with a SQLite database at `path`.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self::new(BackendConfig::sqlite(path))
    }

    /// Defaults with the in-memory backend.
    pub fn memory() -> Self {
        Self::new(BackendConfig::memory())
    }
}

impl Default for StoreConfig {
    /// In-memory backend with default limits.
    fn default() -> Self {
        Self::memory()
    }
}
