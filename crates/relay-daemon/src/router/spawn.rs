//! The spawn manager: SPAWN starts a wrapped agent inside the daemon, RELEASE stops it.
//!
//! A spawned agent runs headless under the wrapper (`relay-wrapper`): its own PTY, its own
//! connection to this daemon under its name, its process group stopped on release. The router
//! keeps the bookkeeping (limits, names, who spawned whom, pid, status); starting and stopping
//! processes happens in tasks that report back with [`SpawnEvent`]s, so the router never waits.
//!
//! Between an accepted SPAWN and the agent's registration, the name counts as a known agent:
//! messages to it are queued and delivered when it connects. The task is routed as a message
//! from the spawner once the agent registers, so it goes through the agent's normal injection
//! queue.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use relay_protocol::{
    EntityType, Envelope, ErrorCode, MessageType, ReleasePayload, ReleaseResultPayload,
    SendPayload, SpawnPayload, SpawnResultPayload,
};
use relay_wrapper::{Mode, Wrapper, WrapperOptions};
use tokio_util::sync::CancellationToken;

use super::{Router, RouterMsg};

/// What a spawn/stop task reports.
#[derive(Debug)]
pub enum SpawnEvent {
    Started {
        name: String,
        pid: u32,
        stop: CancellationToken,
    },
    Failed {
        name: String,
        error: String,
    },
    Exited {
        name: String,
        code: i32,
        stopped: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerStatus {
    Starting,
    Running,
    Stopping,
}

impl WorkerStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            WorkerStatus::Starting => "starting",
            WorkerStatus::Running => "running",
            WorkerStatus::Stopping => "stopping",
        }
    }
}

/// A spawned agent.
pub struct Worker {
    pub cli: String,
    pub spawner: String,
    pub task: String,
    pub pid: Option<u32>,
    pub status: WorkerStatus,
    stop: Option<CancellationToken>,
    /// (connection, request id) waiting for SPAWN_RESULT.
    spawn_reply: Option<(u64, String)>,
    /// (connection, request id) waiting for RELEASE_RESULT.
    release_replies: Vec<(u64, String)>,
    task_sent: bool,
}

#[derive(Default)]
pub struct Spawner {
    pub workers: HashMap<String, Worker>,
}

impl Spawner {
    /// Stops every worker and waits (bounded) for them to exit.
    pub async fn stop_all(&mut self, grace: Duration) {
        let tokens: Vec<CancellationToken> = self
            .workers
            .values()
            .filter_map(|w| w.stop.clone())
            .collect();
        for t in &tokens {
            t.cancel();
        }
        if !tokens.is_empty() {
            tokio::time::sleep(grace.min(Duration::from_secs(2))).await;
        }
    }
}

impl Router {
    pub(crate) fn on_spawn(&mut self, conn_id: u64, env: Envelope) {
        if !self.verify_ingress(conn_id, &env, true).accepted() {
            return;
        }
        // A tool connection (the CLI) spawns on behalf of the user: the spawner is `cli`.
        let requester = match self.conns.get(&conn_id) {
            Some(c) if c.system => "cli".to_string(),
            Some(c) => c.name.clone(),
            None => return,
        };
        let payload: SpawnPayload = match env.payload_as() {
            Ok(p) => p,
            Err(e) => {
                return self.reply_error(
                    conn_id,
                    ErrorCode::BadRequest,
                    format!("invalid SPAWN payload: {e}; expected {{name, cli, task?}}"),
                    &env.id,
                )
            }
        };
        let name = payload.name.clone();
        match self.check_spawn(&payload, &requester) {
            Ok(opts) => {
                let spawner = payload
                    .spawner_name
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or(requester);
                self.ensure_known(&name);
                self.spawner.workers.insert(
                    name.clone(),
                    Worker {
                        cli: payload.cli.clone(),
                        spawner,
                        task: payload.task.clone(),
                        pid: None,
                        status: WorkerStatus::Starting,
                        stop: None,
                        spawn_reply: Some((conn_id, env.id.clone())),
                        release_replies: Vec::new(),
                        task_sent: false,
                    },
                );
                tracing::info!(agent = %name, cli = %payload.cli, "spawning");
                let tx = self.shared.router_tx.clone();
                tokio::spawn(run_worker(*opts, tx));
            }
            Err(error) => {
                tracing::info!(agent = %name, %error, "spawn refused");
                let result = SpawnResultPayload {
                    reply_to: env.id.clone(),
                    success: false,
                    name,
                    pid: None,
                    error: Some(error),
                    policy_decision: None,
                };
                self.reply(
                    conn_id,
                    &Envelope::new(MessageType::SpawnResult, &result).id(env.id),
                );
            }
        }
    }

    /// Applies the spawn policy; on success, what to run.
    fn check_spawn(
        &mut self,
        p: &SpawnPayload,
        requester: &str,
    ) -> Result<Box<WrapperOptions>, String> {
        let cfg = &self.shared.config.spawn;
        if !cfg.enabled {
            return Err(
                "spawning is disabled; set [spawn] enabled = true in .agent-relay/relay.toml"
                    .into(),
            );
        }
        relay_protocol::ids::validate_agent_name(&p.name)
            .map_err(|e| format!("invalid agent name {:?}: {e}", p.name))?;
        if let Some(w) = self.spawner.workers.get(&p.name) {
            return Err(format!(
                "{} is already spawned ({}); release it first",
                p.name,
                w.status.as_str()
            ));
        }
        if self.by_name.contains_key(&p.name) {
            return Err(format!(
                "an agent named {} is already connected; choose another name",
                p.name
            ));
        }
        if self.spawner.workers.len() >= cfg.max_agents {
            return Err(format!(
                "the limit of {} spawned agents is reached ([spawn] max_agents); release one first",
                cfg.max_agents
            ));
        }
        let spawner = p.spawner_name.as_deref().unwrap_or(requester);
        let by_spawner = self
            .spawner
            .workers
            .values()
            .filter(|w| w.spawner == spawner)
            .count();
        if by_spawner >= cfg.max_per_spawner {
            return Err(format!(
                "{spawner} already runs {by_spawner} spawned agents ([spawn] max_per_spawner = {})",
                cfg.max_per_spawner
            ));
        }
        let words = shell_words::split(&p.cli)
            .map_err(|e| format!("cannot parse the command {:?}: {e}", p.cli))?;
        let Some((program, args)) = words.split_first() else {
            return Err("SPAWN needs a `cli` (the agent command, e.g. claude)".into());
        };
        if !cfg.allowed_clis.is_empty() {
            let base = std::path::Path::new(program)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(program);
            if !cfg.allowed_clis.iter().any(|a| a == program || a == base) {
                return Err(format!(
                    "{program} is not in [spawn] allowed_clis ({})",
                    cfg.allowed_clis.join(", ")
                ));
            }
        }
        let (root, relay_dir) = self.project_dirs();
        let mut args = args.to_vec();
        let mut model = p.model.clone();
        if relay_agents::is_claude_cli(program) {
            let registry = relay_agents::ProfileRegistry::discover(&root);
            if let Some(profile) = registry.find(&p.name) {
                if let Some(m) = &model {
                    if !args
                        .iter()
                        .any(|a| a == "--model" || a.starts_with("--model="))
                    {
                        args.push("--model".into());
                        args.push(m.clone());
                    }
                }
                args = relay_agents::apply_claude_profile(&args, profile);
                model = model.or_else(|| profile.model.clone());
            }
        }
        let mut opts = WrapperOptions::new(
            p.name.clone(),
            program.clone(),
            args,
            self.shared.socket_path.clone(),
            relay_dir,
        );
        opts.mode = Mode::Headless;
        opts.cwd = Some(
            p.cwd
                .as_ref()
                .map(PathBuf::from)
                .map(|c| if c.is_absolute() { c } else { root.join(c) })
                .unwrap_or(root),
        );
        opts.cli_label = Some(p.cli.clone());
        opts.task = (!p.task.is_empty()).then(|| p.task.clone());
        opts.model = model;
        // Crash reports go to the spawner when it is an agent that can receive them.
        opts.spawner = (spawner != "cli").then(|| spawner.to_string());
        opts.stop_grace = Duration::from_millis(cfg.stop_grace_ms);
        opts.rows = cfg.rows;
        opts.cols = cfg.cols;
        opts.signing = self.provision_signing(&p.name)?;
        Ok(Box::new(opts))
    }

    /// The project root and its `.agent-relay/` directory.
    fn project_dirs(&self) -> (PathBuf, PathBuf) {
        if let Some(p) = &self.shared.project {
            return (p.root.clone(), p.relay_dir.clone());
        }
        let relay_dir = self
            .shared
            .socket_path
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let root = relay_dir
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| relay_dir.clone());
        (root, relay_dir)
    }

    /// Gives a spawned agent what it signs with: the shared secret, or its own key file (created
    /// now when it has none, and made known to the verifier at once).
    fn provision_signing(
        &mut self,
        name: &str,
    ) -> Result<Option<relay_client::ClientSigning>, String> {
        let s = &self.shared.config.signing;
        if !s.enabled {
            return Ok(None);
        }
        if !s.shared_secret.is_empty() {
            return Ok(Some(relay_client::ClientSigning::SharedSecret(
                s.shared_secret.clone(),
            )));
        }
        let Some(keys_dir) = self
            .signing
            .as_ref()
            .map(|g| g.verifier().keys_dir().to_path_buf())
        else {
            return Ok(None);
        };
        let store = relay_signing::Keystore::new(&keys_dir);
        let now = relay_protocol::now_ms();
        let file = match store.load(name) {
            Ok(f) if f.signing_key(now).is_ok() => f,
            Ok(_) => {
                return Err(format!(
                    "{name}'s signing key cannot sign (revoked or expired); run `agent-relay keys rotate {name}`"
                ))
            }
            Err(_) => {
                let algorithm: relay_signing::Algorithm = s
                    .algorithm
                    .parse()
                    .map_err(|e| format!("[signing] algorithm: {e}"))?;
                let f = store
                    .create(name, algorithm, now)
                    .map_err(|e| format!("cannot create {name}'s signing key: {e}"))?;
                tracing::info!(agent = %name, ?algorithm, "signing key provisioned for a spawned agent");
                f
            }
        };
        if let Some(guard) = &self.signing {
            guard.verifier().insert_key(&file);
        }
        Ok(Some(relay_client::ClientSigning::KeyFile { keys_dir }))
    }

    /// Makes `name` a known agent so that messages to it are queued until it connects.
    fn ensure_known(&mut self, name: &str) {
        if !self.registry.contains_key(name) {
            let record = super::new_record(name, EntityType::Agent, relay_protocol::now_ms());
            self.registry.insert(name.to_string(), record);
        }
    }

    pub(crate) fn on_release(&mut self, conn_id: u64, env: Envelope) {
        if !self.verify_ingress(conn_id, &env, true).accepted() {
            return;
        }
        let payload: ReleasePayload = match env.payload_as() {
            Ok(p) => p,
            Err(e) => {
                return self.reply_error(
                    conn_id,
                    ErrorCode::BadRequest,
                    format!("invalid RELEASE payload: {e}; expected {{name, reason?}}"),
                    &env.id,
                )
            }
        };
        let name = payload.name.clone();
        let Some(worker) = self.spawner.workers.get_mut(&name) else {
            let error = if self.by_name.contains_key(&name) {
                format!("{name} was not spawned by this daemon; stop it where it runs")
            } else {
                format!("no spawned agent named {name}")
            };
            let result = ReleaseResultPayload {
                reply_to: env.id.clone(),
                success: false,
                name,
                error: Some(error),
            };
            return self.reply(
                conn_id,
                &Envelope::new(MessageType::ReleaseResult, &result).id(env.id),
            );
        };
        worker.release_replies.push((conn_id, env.id.clone()));
        worker.status = WorkerStatus::Stopping;
        tracing::info!(agent = %name, reason = ?payload.reason, "releasing");
        if let Some(stop) = &worker.stop {
            stop.cancel();
        }
        // Still starting: the stop happens as soon as it has started (see `Started`).
    }

    pub(crate) fn on_spawn_event(&mut self, event: SpawnEvent) {
        match event {
            SpawnEvent::Started { name, pid, stop } => {
                let Some(w) = self.spawner.workers.get_mut(&name) else {
                    stop.cancel();
                    return;
                };
                w.pid = Some(pid);
                if w.status == WorkerStatus::Stopping {
                    stop.cancel();
                } else {
                    w.status = WorkerStatus::Running;
                }
                w.stop = Some(stop);
                if let Some((conn_id, id)) = w.spawn_reply.take() {
                    let result = SpawnResultPayload {
                        reply_to: id.clone(),
                        success: true,
                        name: name.clone(),
                        pid: Some(pid),
                        error: None,
                        policy_decision: None,
                    };
                    self.reply(
                        conn_id,
                        &Envelope::new(MessageType::SpawnResult, &result).id(id),
                    );
                }
                tracing::info!(agent = %name, pid, "spawned");
                // Registered before this report arrived: the task can go now.
                if self.by_name.contains_key(&name) {
                    self.send_spawn_task(&name);
                }
            }
            SpawnEvent::Failed { name, error } => {
                tracing::warn!(agent = %name, %error, "spawn failed");
                if let Some(mut w) = self.spawner.workers.remove(&name) {
                    if let Some((conn_id, id)) = w.spawn_reply.take() {
                        let result = SpawnResultPayload {
                            reply_to: id.clone(),
                            success: false,
                            name: name.clone(),
                            pid: None,
                            error: Some(error.clone()),
                            policy_decision: None,
                        };
                        self.reply(
                            conn_id,
                            &Envelope::new(MessageType::SpawnResult, &result).id(id),
                        );
                    }
                    self.answer_releases(&name, &mut w, true, None);
                }
            }
            SpawnEvent::Exited {
                name,
                code,
                stopped,
            } => {
                if let Some(mut w) = self.spawner.workers.remove(&name) {
                    tracing::info!(agent = %name, code, stopped, "spawned agent exited");
                    self.answer_releases(&name, &mut w, true, None);
                    if !stopped && code != 0 {
                        self.counters.spawn_crashes += 1;
                    }
                }
            }
        }
    }

    fn answer_releases(
        &mut self,
        name: &str,
        w: &mut Worker,
        success: bool,
        error: Option<String>,
    ) {
        for (conn_id, id) in w.release_replies.drain(..) {
            let result = ReleaseResultPayload {
                reply_to: id.clone(),
                success,
                name: name.to_string(),
                error: error.clone(),
            };
            self.reply(
                conn_id,
                &Envelope::new(MessageType::ReleaseResult, &result).id(id),
            );
        }
    }

    /// Called when an agent registers: a spawned agent gets its task.
    pub(crate) fn on_worker_registered(&mut self, name: &str) {
        if self
            .spawner
            .workers
            .get(name)
            .is_some_and(|w| w.status != WorkerStatus::Starting || w.pid.is_some())
        {
            self.send_spawn_task(name);
        }
    }

    fn send_spawn_task(&mut self, name: &str) {
        let Some(w) = self.spawner.workers.get_mut(name) else {
            return;
        };
        if w.task_sent || w.task.trim().is_empty() {
            return;
        }
        w.task_sent = true;
        let (from, task) = (w.spawner.clone(), w.task.clone());
        let mut data = serde_json::Map::new();
        data.insert("_spawnTask".into(), true.into());
        let payload = SendPayload {
            kind: relay_protocol::PayloadKind::Message,
            body: task,
            data: Some(data),
            thread: None,
        };
        let env = Envelope::new(MessageType::Send, &payload)
            .from(from.clone())
            .to(name);
        self.route_internal(&from, name, env, &payload);
    }

    /// The pid, cli and status of a spawned agent, for LIST_AGENTS.
    pub(crate) fn worker_info(&self, name: &str) -> Option<(Option<u32>, &str, &str, &str)> {
        self.spawner
            .workers
            .get(name)
            .map(|w| (w.pid, w.cli.as_str(), w.status.as_str(), w.spawner.as_str()))
    }
}

/// Starts the agent, reports it, waits for it to exit, reports that.
async fn run_worker(opts: WrapperOptions, router: tokio::sync::mpsc::Sender<RouterMsg>) {
    let name = opts.name.clone();
    let wrapper = match Wrapper::start(opts).await {
        Ok(w) => w,
        Err(e) => {
            let _ = router
                .send(RouterMsg::Spawn(SpawnEvent::Failed {
                    name,
                    error: e.to_string(),
                }))
                .await;
            return;
        }
    };
    let started = SpawnEvent::Started {
        name: name.clone(),
        pid: wrapper.pid,
        stop: wrapper.stopper(),
    };
    let _ = router.send(RouterMsg::Spawn(started)).await;
    let exit = wrapper.wait().await;
    let _ = router
        .send(RouterMsg::Spawn(SpawnEvent::Exited {
            name,
            code: exit.code,
            stopped: exit.stopped,
        }))
        .await;
}
