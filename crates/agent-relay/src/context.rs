//! The project, configuration and socket a command works on, and connecting to the daemon.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use relay_client::{Client, ClientConfig, ClientError, ClientSigning, EventStream};
use relay_config::{ProjectPaths, RelayConfig};
use relay_signing::Keystore;

use crate::cli::GlobalArgs;

/// The daemon is not running: printed as the single line users see.
#[derive(Debug)]
pub struct NotRunning {
    pub root: PathBuf,
    pub socket: PathBuf,
}

impl fmt::Display for NotRunning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no daemon is running for {} (socket {}); start it with 'agent-relay up'",
            self.root.display(),
            self.socket.display()
        )
    }
}

impl std::error::Error for NotRunning {}

/// Everything a command needs to find the daemon.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub global: GlobalArgs,
    pub paths: ProjectPaths,
    pub config: RelayConfig,
    pub socket: PathBuf,
}

impl Ctx {
    /// Resolves the project (`--project` or discovery from the working directory), loads
    /// `relay.toml` with environment and `-c` overrides, and applies `--socket`.
    pub fn load(global: &GlobalArgs) -> anyhow::Result<Ctx> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let paths = match &global.project {
            Some(dir) => {
                let dir = absolute(&cwd, dir);
                anyhow::ensure!(
                    dir.is_dir(),
                    "project directory {} does not exist",
                    dir.display()
                );
                ProjectPaths::for_root(dir)
            }
            None => ProjectPaths::discover(&cwd),
        };
        let mut config = relay_config::load(&paths.config_file, &global.config_set)
            .context("cannot load the configuration")?;
        if let Some(socket) = &global.socket {
            config.daemon.socket = absolute(&cwd, socket).to_string_lossy().into_owned();
        }
        let socket = config.socket_path(&paths);
        Ok(Ctx {
            global: global.clone(),
            paths,
            config,
            socket,
        })
    }

    pub fn not_running(&self) -> NotRunning {
        NotRunning {
            root: self.paths.root.clone(),
            socket: self.socket.clone(),
        }
    }

    /// The name of this invocation's own connection: unique per process, so it never replaces
    /// a connected agent.
    pub fn cli_name() -> String {
        format!("cli-{}", std::process::id())
    }

    /// A client configuration for short-lived CLI connections (no reconnect).
    pub fn client_config(&self, name: &str) -> ClientConfig {
        let mut c = ClientConfig::new(&self.socket, name);
        c.cli = Some("agent-relay".into());
        c.program = Some("agent-relay".into());
        c.reconnect = false;
        c.max_frame_bytes = self.config.daemon.max_frame_bytes;
        c.working_directory = Some(self.paths.root.to_string_lossy().into_owned());
        c.signing = self.signing_for(name);
        c
    }

    /// How this CLI signs what it sends as `name`: with `signing.shared_secret` when one is
    /// configured, else with `name`'s key file when it has one (see `agent-relay keys`).
    ///
    /// A key file is used even when this invocation's configuration has signing off (the daemon
    /// may have been started with `-c signing.enabled=true`); then only if it can sign, so a
    /// stale file never gets in the way of a daemon that does not check. With signing on, a key
    /// that cannot sign (revoked, expired, unreadable) fails the connect with the reason.
    pub fn signing_for(&self, name: &str) -> Option<ClientSigning> {
        let signing = &self.config.signing;
        if !signing.shared_secret.is_empty() {
            return Some(ClientSigning::SharedSecret(signing.shared_secret.clone()));
        }
        let keys_dir = self.config.keys_dir(&self.paths);
        let store = Keystore::new(&keys_dir);
        let path = store.path_for(name).ok()?;
        if std::fs::symlink_metadata(&path).is_err() {
            return None;
        }
        if !signing.enabled
            && store
                .load(name)
                .and_then(|f| f.signing_key(relay_protocol::now_ms()))
                .is_err()
        {
            tracing::debug!(
                name,
                "not signing: the key file cannot sign and signing is off"
            );
            return None;
        }
        Some(ClientSigning::KeyFile { keys_dir })
    }

    /// Connects as `name`; a daemon that is not running becomes [`NotRunning`].
    pub async fn connect_as(&self, config: ClientConfig) -> anyhow::Result<(Client, EventStream)> {
        match Client::connect(config).await {
            Ok(c) => Ok(c),
            Err(ClientError::NotRunning { .. }) => Err(self.not_running().into()),
            Err(e @ ClientError::Signing(_)) => Err(e.into()),
            Err(e) => Err(anyhow::Error::new(e).context("cannot talk to the daemon")),
        }
    }

    /// Connects as this invocation's own transient name, as a system component so the CLI's
    /// connections never show up as agents or receive broadcasts.
    pub async fn connect(&self) -> anyhow::Result<(Client, EventStream)> {
        let mut config = self.client_config(&Ctx::cli_name());
        config.system_component = true;
        self.connect_as(config).await
    }

    /// With `as_name`, connects as a user of that name (signing with its key when it has one; a
    /// connected agent of that name is taken over); without, as this invocation's own transient
    /// tool connection.
    pub async fn connect_maybe_as(
        &self,
        as_name: Option<&str>,
    ) -> anyhow::Result<(Client, EventStream)> {
        match as_name {
            Some(name) => {
                let mut config = self.client_config(name);
                config.entity_type = relay_protocol::EntityType::User;
                self.connect_as(config).await
            }
            None => self.connect().await,
        }
    }

    /// Whether a daemon completes a handshake and answers STATUS within `timeout`.
    pub async fn probe(&self, timeout: Duration) -> Option<relay_protocol::StatusResponsePayload> {
        let mut config = self.client_config(&format!("cli-probe-{}", std::process::id()));
        config.connect_timeout = timeout;
        config.request_timeout = timeout;
        let (client, _events) = Client::connect(config).await.ok()?;
        let status = client.status().await.ok();
        client.close().await;
        status
    }

    /// The daemon's pid: from STATUS when it reports one, else from the pid file.
    pub fn pid_from(&self, status: Option<&relay_protocol::StatusResponsePayload>) -> Option<u32> {
        status
            .and_then(|s| s.extra.get("pid"))
            .and_then(|p| p.as_u64())
            .and_then(|p| u32::try_from(p).ok())
            .or_else(|| read_pid_file(&ProjectPaths::pid_file_for(&self.socket)))
    }
}

fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    }
}

/// Reads a pid file: a decimal pid (surrounding whitespace allowed) or JSON with a `pid` key.
pub fn read_pid_file(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    if let Some(first) = text.split_whitespace().next() {
        if let Ok(pid) = first.parse::<u32>() {
            return Some(pid);
        }
    }
    serde_json::from_str::<serde_json::Value>(text)
        .ok()?
        .get("pid")?
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_files_in_both_forms() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("relay.sock.pid");
        std::fs::write(&p, "1234\n").expect("write");
        assert_eq!(read_pid_file(&p), Some(1234));
        std::fs::write(&p, "{\"pid\": 99, \"socket\": \"/x\"}").expect("write");
        assert_eq!(read_pid_file(&p), Some(99));
        std::fs::write(&p, "garbage").expect("write");
        assert_eq!(read_pid_file(&p), None);
        assert_eq!(read_pid_file(&dir.path().join("missing")), None);
    }

    #[test]
    fn not_running_is_one_clear_line() {
        let e = NotRunning {
            root: "/proj".into(),
            socket: "/proj/.agent-relay/relay.sock".into(),
        };
        assert_eq!(
            e.to_string(),
            "no daemon is running for /proj (socket /proj/.agent-relay/relay.sock); start it with 'agent-relay up'"
        );
    }
}
