//! Sending what the agent printed.
//!
//! Each detected command is handed to its own task so that a slow daemon or a sync wait never
//! stalls the PTY. Failures the agent should know about (an unknown recipient, a sync wait that
//! timed out, a refused spawn, a missing outbox file) come back as [`Notice`]s, typed into the
//! agent like a message from `relay`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use relay_client::{Client, ClientError, SendOptions};
use relay_grammar::{Command, MessageKind, OutgoingMessage};
use relay_protocol::{PayloadKind, ReleasePayload, SpawnPayload};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::detect::Detected;

/// Text for the agent from the relay itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice(pub String);

/// Default wait of `[await]` without a timeout.
const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a `->relay-file:` trigger waits for its file to appear.
const OUTBOX_FILE_WAIT: Duration = Duration::from_secs(2);

pub struct Dispatcher {
    queue: mpsc::UnboundedSender<Detected>,
}

impl Dispatcher {
    /// Starts the task that sends the agent's commands one at a time, in the order they were
    /// printed. Only the wait for an `[await]` answer runs beside it.
    pub fn new(
        client: Client,
        agent: String,
        outbox: PathBuf,
        notices: mpsc::UnboundedSender<Notice>,
    ) -> Dispatcher {
        let (queue, mut rx) = mpsc::unbounded_channel::<Detected>();
        tokio::spawn(async move {
            while let Some(detected) = rx.recv().await {
                let command = match detected.command {
                    Command::File(trigger) => match read_outbox(&outbox, &trigger.id).await {
                        Ok(c) => c,
                        Err(text) => {
                            let _ = notices.send(Notice(text));
                            continue;
                        }
                    },
                    other => other,
                };
                if let Err(text) = execute(&client, &agent, command, &notices).await {
                    let _ = notices.send(Notice(text));
                }
            }
        });
        Dispatcher { queue }
    }

    pub fn dispatch(&self, detected: Detected) {
        let _ = self.queue.send(detected);
    }
}

/// Reads and consumes `<outbox>/<id>` (or `<id>.json`), waiting briefly for it to appear.
async fn read_outbox(outbox: &Path, id: &str) -> Result<Command, String> {
    if id.is_empty() || id.contains('/') || id.contains("..") || id.starts_with('.') {
        return Err(format!("outbox file name '{id}' is not allowed"));
    }
    let candidates = [outbox.join(id), outbox.join(format!("{id}.json"))];
    let deadline = tokio::time::Instant::now() + OUTBOX_FILE_WAIT;
    loop {
        for path in &candidates {
            match tokio::fs::read(path).await {
                Ok(bytes) => {
                    let name = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or(id)
                        .to_string();
                    let parsed = relay_grammar::parse_outbox_file(&name, &bytes);
                    // Consumed either way: a bad file must not be re-sent or re-reported.
                    let _ = tokio::fs::remove_file(path).await;
                    return parsed.map_err(|e| format!("outbox file {name} was not sent: {e}"));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot read outbox file {}: {e}", path.display())),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "->relay-file:{id} was printed but there is no file {id} in $AGENT_RELAY_OUTBOX ({}); write the file first, then print the trigger",
                outbox.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn execute(
    client: &Client,
    agent: &str,
    command: Command,
    notices: &mpsc::UnboundedSender<Notice>,
) -> Result<(), String> {
    match command {
        Command::Message(m) => send_message(client, agent, m, notices).await,
        Command::Spawn(s) => {
            let payload = SpawnPayload {
                name: s.name.clone(),
                cli: s.cli.clone(),
                task: s.task.clone().unwrap_or_default(),
                spawner_name: Some(agent.to_string()),
                ..SpawnPayload::default()
            };
            match client.spawn(payload).await {
                Ok(r) if r.success => {
                    tracing::info!(agent, spawned = %s.name, pid = ?r.pid, "spawned");
                    Ok(())
                }
                Ok(r) => Err(format!(
                    "spawning {} failed: {}",
                    s.name,
                    r.error.unwrap_or_else(|| "refused".into())
                )),
                Err(e) => Err(format!("spawning {} failed: {e}", s.name)),
            }
        }
        Command::Release(r) => {
            let payload = ReleasePayload {
                name: r.name.clone(),
                reason: Some(format!("released by {agent}")),
            };
            match client.release(payload).await {
                Ok(res) if res.success => Ok(()),
                Ok(res) => Err(format!(
                    "releasing {} failed: {}",
                    r.name,
                    res.error.unwrap_or_else(|| "refused".into())
                )),
                Err(e) => Err(format!("releasing {} failed: {e}", r.name)),
            }
        }
        Command::File(_) | Command::Rejected(_) => Ok(()),
    }
}

async fn send_message(
    client: &Client,
    agent: &str,
    m: OutgoingMessage,
    notices: &mpsc::UnboundedSender<Notice>,
) -> Result<(), String> {
    if let Some(project) = &m.project {
        if project != "*" {
            return Err(format!(
                "cannot send to {project}:{}: this relay serves one project; address agents by name",
                m.to
            ));
        }
    }
    if m.to == agent {
        return Err("you sent a message to yourself; it was not delivered".into());
    }
    if m.to.starts_with('#') && m.sync.is_none() {
        // Posting to a channel joins it (idempotent): the agent then also hears the replies.
        if let Err(e) = client.join_channel(&m.to).await {
            return Err(format!("cannot join {}: {e}", m.to));
        }
        return client
            .channel_message(&m.to, &m.body, m.thread.as_deref())
            .await
            .map(|_| ())
            .map_err(|e| format!("message to {} failed: {e}", m.to));
    }
    let mut opts = SendOptions::new(&m.to, &m.body);
    opts.kind = match &m.kind {
        MessageKind::Thinking => PayloadKind::Thinking,
        MessageKind::Other(k) if k == "state" => PayloadKind::State,
        MessageKind::Other(k) if k == "action" => PayloadKind::Action,
        _ => PayloadKind::Message,
    };
    opts.thread = m.thread.clone();
    if let Some(Value::Object(map)) = &m.data {
        opts = opts.data(map.clone());
    } else if let Some(other) = &m.data {
        let mut map = Map::new();
        map.insert("value".into(), other.clone());
        opts = opts.data(map);
    }
    if let Some(i) = m.importance {
        opts = opts.importance(i);
    }
    if m.subject.is_some() || m.reply_to.is_some() {
        let meta = opts.meta.get_or_insert_with(Default::default);
        meta.reply_to = m.reply_to.clone();
        if let Some(subject) = &m.subject {
            meta.extra
                .insert("subject".into(), Value::String(subject.clone()));
        }
    }
    match m.sync {
        Some(sync) => {
            let timeout = sync
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_SYNC_TIMEOUT);
            let pending = client
                .send_sync(opts, timeout)
                .await
                .map_err(|e| format!("[await] message to {} failed: {e}", m.to))?;
            let notices = notices.clone();
            let to = m.to.clone();
            tokio::spawn(async move {
                let text = match pending.answer().await {
                    Ok(_) => return,
                    Err(ClientError::Timeout { .. }) => format!(
                        "[await] message to {to} was not confirmed within {}s",
                        timeout.as_secs()
                    ),
                    Err(e) => format!("[await] message to {to} failed: {e}"),
                };
                let _ = notices.send(Notice(text));
            });
            Ok(())
        }
        None => client
            .send(opts)
            .await
            .map(|_| ())
            .map_err(|e| format!("message to {} failed: {e}", m.to)),
    }
}
