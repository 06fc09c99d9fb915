//! Configuration for the agent-relay daemon and its tools.
//!
//! - [`ProjectPaths`] finds the project a command runs in (the nearest ancestor holding `.git`,
//!   `Cargo.toml`, `package.json`, `go.mod`, `pyproject.toml` or `.agent-relay`) and derives every
//!   path under `<project>/.agent-relay/` (socket, pid file, database, logs).
//! - [`RelayConfig`] is the whole configuration, one struct per `relay.toml` section, each field
//!   with its documented default (`docs/CONFIG.md`).
//! - [`load`] layers `relay.toml` < `AGENT_RELAY_<SECTION>_<KEY>` environment variables <
//!   command-line overrides (`section.key=value`), rejects unknown keys and out-of-range values
//!   with an error that names the key and the source it came from.

mod layering;
mod paths;
mod schema;

pub use layering::{load, load_from, ConfigError, Override};
pub use paths::{ensure_relay_dir, find_project_root, ProjectPaths, RELAY_DIR};
pub use schema::*;
