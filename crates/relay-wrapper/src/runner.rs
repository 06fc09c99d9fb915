//! The wrapper's event loop: one task owns the PTY, the screen model, the detector, the
//! injection queue and the daemon connection, so there is one place where each decision is made.

use std::time::{Duration, Instant};

use bytes::Bytes;
use relay_client::{Client, Event, EventStream};
use relay_grammar::GrammarOptions;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::detect::Detector;
use crate::dispatch::{Dispatcher, Notice};
use crate::inject::{format_injection, Incoming, InjectQueue, Multiline, Outcome, Stage};
use crate::logs::LogSink;
use crate::options::{Mode, WrapperOptions};
use crate::profile::{judge, Readiness, ReadinessProfile};
use crate::pty::{exit_code, group_alive, signal_group, PtyChild, PtyInput};
use crate::screen::Screen;

const TICK: Duration = Duration::from_millis(20);
/// Output quiet for this long before the window is parsed (or this long since the last parse).
const SCAN_QUIET: Duration = Duration::from_millis(30);
const SCAN_MAX_DELAY: Duration = Duration::from_millis(250);
/// A key typed by the user postpones injections this long.
const USER_TYPING_HOLD: Duration = Duration::from_millis(1500);

/// How the agent's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapperExit {
    /// Exit code (128 + signal when killed by a signal).
    pub code: i32,
    /// Stopped on request (release, shutdown) rather than exiting on its own.
    pub stopped: bool,
}

/// Counters of the injection pipeline.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InjectStats {
    pub delivered: u64,
    pub unverified: u64,
    pub failed: u64,
    pub forced: u64,
}

pub(crate) struct Runner {
    pub opts: WrapperOptions,
    pub client: Client,
    pub events: EventStream,
    pub child: PtyChild,
    pub input: PtyInput,
    pub screen: Screen,
    pub detector: Detector,
    pub queue: InjectQueue,
    pub stage: Stage,
    pub profile: ReadinessProfile,
    pub dispatcher: Dispatcher,
    pub notices: mpsc::UnboundedReceiver<Notice>,
    pub logs: LogSink,
    pub stop: CancellationToken,
    pub user_input: Option<mpsc::Receiver<Bytes>>,
    pub last_user_key: Option<Instant>,
    pub stats: InjectStats,
    pub explicit_ready: bool,
    pub scan_due: bool,
    pub last_scan: Instant,
}

impl Runner {
    pub(crate) async fn run(mut self) -> WrapperExit {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut stdout = tokio::io::stdout();
        let mut winch = match self.opts.mode {
            Mode::Interactive => {
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok()
            }
            Mode::Headless => None,
        };
        let mut output_open = true;
        let stopped;
        let status = loop {
            tokio::select! {
                chunk = self.child.output.recv(), if output_open => match chunk {
                    Some(chunk) => {
                        if self.opts.mode == Mode::Interactive {
                            let _ = stdout.write_all(&chunk).await;
                            let _ = stdout.flush().await;
                        } else {
                            self.answer_terminal_queries(&chunk).await;
                        }
                        self.on_output(&chunk).await;
                    }
                    None => output_open = false,
                },
                status = &mut self.child.exit => {
                    stopped = false;
                    break status.ok().flatten();
                }
                key = recv_opt(&mut self.user_input) => match key {
                    Some(bytes) => {
                        self.last_user_key = Some(Instant::now());
                        let _ = self.input.write(bytes).await;
                    }
                    None => self.user_input = None,
                },
                _ = recv_signal(&mut winch) => {
                    if let Some((rows, cols)) = crate::terminal::terminal_size() {
                        self.child.resizer().resize(rows, cols);
                        self.screen.resize(rows, cols);
                    }
                }
                event = self.events.recv() => match event {
                    Some(event) => self.on_event(event).await,
                    None => {
                        tracing::warn!(agent = %self.opts.name, "the daemon connection closed for good");
                        // Keep the agent running; it can still work locally.
                        tokio::time::sleep(TICK).await;
                    }
                },
                Some(notice) = self.notices.recv() => self.on_notice(notice),
                _ = tick.tick() => self.on_tick().await,
                _ = self.stop.cancelled() => {
                    stopped = true;
                    break self.stop_child().await;
                }
            }
        };
        // Drain what the agent printed last.
        while let Ok(Some(chunk)) =
            tokio::time::timeout(Duration::from_millis(100), self.child.output.recv()).await
        {
            if self.opts.mode == Mode::Interactive {
                let _ = stdout.write_all(&chunk).await;
            }
            self.on_output(&chunk).await;
        }
        let _ = stdout.flush().await;
        let window = self.screen.window();
        for d in self.detector.scan_final(&window, self.screen.clears()) {
            self.dispatcher.dispatch(d);
        }
        let code = status.as_ref().map_or(1, exit_code);
        // Whatever the agent started must not outlive it.
        if group_alive(self.child.pid) {
            signal_group(self.child.pid, rustix::process::Signal::KILL);
        }
        self.logs.flush(&self.client).await;
        if !stopped && code != 0 {
            self.report_crash(code).await;
        }
        tracing::info!(agent = %self.opts.name, code, stopped, ?self.stats, "agent exited");
        self.client.close().await;
        WrapperExit { code, stopped }
    }

    async fn stop_child(&mut self) -> Option<std::process::ExitStatus> {
        let pid = self.child.pid;
        signal_group(pid, rustix::process::Signal::TERM);
        signal_group(pid, rustix::process::Signal::HUP);
        match tokio::time::timeout(self.opts.stop_grace, &mut self.child.exit).await {
            Ok(status) => status.ok().flatten(),
            Err(_) => {
                tracing::warn!(agent = %self.opts.name, pid, "the agent ignored SIGTERM; killing it");
                signal_group(pid, rustix::process::Signal::KILL);
                tokio::time::timeout(Duration::from_secs(5), &mut self.child.exit)
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
            }
        }
    }

    async fn on_output(&mut self, chunk: &[u8]) {
        self.logs.write(chunk).await;
        if contains(chunk, b"->pty:ready") {
            self.explicit_ready = true;
        }
        self.screen.process(chunk);
        self.scan_due = true;
    }

    /// Headless agents have no real terminal to answer a cursor position query; some CLIs
    /// wait for the answer.
    async fn answer_terminal_queries(&mut self, chunk: &[u8]) {
        if contains(chunk, b"\x1b[6n") || contains(chunk, b"\x1b[?6n") {
            let (row, col) = self.screen.cursor();
            let reply = format!("\x1b[{};{}R", row + 1, col + 1);
            let _ = self.input.write(reply.into_bytes()).await;
        }
    }

    async fn on_tick(&mut self) {
        let quiet = self.screen.quiet_for();
        if self.scan_due && (quiet >= SCAN_QUIET || self.last_scan.elapsed() >= SCAN_MAX_DELAY) {
            self.scan().await;
        } else if !self.scan_due && self.last_scan.elapsed() >= Duration::from_millis(500) {
            // The cursor's row joins the window once output settles.
            self.scan().await;
        }
        self.step_injection().await;
        self.logs.maybe_flush(&self.client).await;
    }

    async fn scan(&mut self) {
        self.scan_due = false;
        self.last_scan = Instant::now();
        let window = self.screen.window();
        let found = self.detector.scan(&window, self.screen.clears());
        for d in found {
            self.dispatcher.dispatch(d);
        }
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Message(m) => {
                let short = relay_protocol::ids::short_id(&m.id).to_string();
                let channel = m
                    .delivery
                    .as_ref()
                    .and_then(|d| d.original_to.clone())
                    .filter(|t| t == "*" || t.starts_with('#'));
                let incoming = Incoming {
                    delivery_id: Some(m.id.clone()),
                    seq: m.seq(),
                    short_id: short,
                    from: display_sender(&m),
                    body: m.payload.body.clone(),
                    thread: m.payload.thread.clone(),
                    importance: m.meta.as_ref().and_then(|x| x.importance),
                    channel,
                    sync_correlation: m.sync_correlation_id().map(str::to_string),
                };
                if self.queue.is_seen(&m.id)
                    && !self.is_in_flight(&m.id)
                    && !self.queue.contains(&m.id)
                {
                    // Injected before; our ACK was lost. Acknowledge again, never type twice.
                    let _ = self.client.ack(&m.id, m.seq()).await;
                    return;
                }
                self.queue.push(incoming);
            }
            Event::ChannelMessage {
                id, from, payload, ..
            } => {
                let incoming = Incoming {
                    delivery_id: Some(id.clone()),
                    seq: 0,
                    short_id: relay_protocol::ids::short_id(&id).to_string(),
                    from,
                    body: payload.body,
                    thread: payload.thread,
                    importance: None,
                    channel: Some(payload.channel),
                    sync_correlation: None,
                };
                self.queue.push(incoming);
            }
            Event::Nack(n) => {
                let why = n
                    .message
                    .clone()
                    .or_else(|| n.reason.clone())
                    .or_else(|| n.code.map(|c| format!("{c:?}")))
                    .unwrap_or_else(|| "refused".into());
                let text = format!(
                    "your message {} was not delivered: {why}",
                    relay_protocol::ids::short_id(&n.ack_id)
                );
                self.on_notice(Notice(text));
            }
            Event::ServerError(e) => {
                tracing::warn!(agent = %self.opts.name, code = ?e.code, message = %e.message, "daemon error");
            }
            Event::Disconnected { reason } => {
                tracing::warn!(agent = %self.opts.name, %reason, "lost the daemon; reconnecting");
            }
            Event::Connected { resumed, .. } => {
                tracing::info!(agent = %self.opts.name, resumed, "connected to the daemon");
            }
            _ => {}
        }
    }

    fn is_in_flight(&self, id: &str) -> bool {
        stage_message(&self.stage).is_some_and(|m| m.delivery_id.as_deref() == Some(id))
    }

    fn on_notice(&mut self, notice: Notice) {
        let msg = Incoming {
            delivery_id: None,
            seq: 0,
            short_id: crate::inject::random_short_id(),
            from: "relay".into(),
            body: notice.0,
            thread: None,
            importance: Some(60),
            channel: None,
            sync_correlation: None,
        };
        self.queue.push_front(msg);
    }

    /// Whether the injection in progress has to keep waiting (nothing to do this tick).
    fn injection_waits(&self, now: Instant) -> bool {
        match &self.stage {
            Stage::Idle { until } => now < *until || self.queue.is_empty(),
            Stage::WaitReady { since, .. } => {
                let user_typing = self
                    .last_user_key
                    .is_some_and(|t| t.elapsed() < USER_TYPING_HOLD);
                let verdict = judge(
                    &self.profile,
                    &self.screen.contents(),
                    &self.screen.around_cursor(3),
                    self.screen.quiet_for(),
                    self.explicit_ready,
                );
                let forced = since.elapsed() >= self.profile.max_wait;
                !forced && (verdict != Readiness::Ready || user_typing)
            }
            Stage::VerifyText { msg, deadline, .. } => now < *deadline && !self.marker_visible(msg),
            Stage::Enter { at, .. } => now < *at,
            Stage::VerifyEnter {
                before, deadline, ..
            } => now < *deadline && self.screen_fingerprint() == *before,
        }
    }

    fn marker_visible(&self, msg: &Incoming) -> bool {
        self.screen
            .visible_text()
            .contains(&format!("[{}]", msg.short_id))
    }

    /// Moves the injection state machine on by one transition when one is due.
    async fn step_injection(&mut self) {
        let now = Instant::now();
        if self.injection_waits(now) {
            return;
        }
        let stage = std::mem::replace(&mut self.stage, Stage::Idle { until: now });
        self.stage = match stage {
            Stage::Idle { .. } => match self.queue.pop() {
                Some(msg) => Stage::WaitReady {
                    msg: Box::new(msg),
                    since: now,
                    attempt: 1,
                },
                None => Stage::Idle { until: now },
            },
            Stage::WaitReady {
                msg,
                since,
                attempt,
            } => {
                let forced = since.elapsed() >= self.profile.max_wait;
                if forced {
                    self.stats.forced += 1;
                    tracing::warn!(agent = %self.opts.name, waited = ?since.elapsed(), "the agent never looked ready; typing the message anyway");
                }
                self.type_message(msg, attempt, forced).await
            }
            Stage::VerifyText {
                msg,
                text,
                attempt,
                forced,
                ..
            } => {
                if self.marker_visible(&msg) {
                    Stage::Enter {
                        msg,
                        text,
                        at: now + self.profile.enter_delay,
                        forced,
                    }
                } else if attempt >= self.opts.inject.attempts {
                    self.finish(
                        *msg,
                        Outcome::Failed(format!(
                            "the text never appeared on the agent's screen after {attempt} attempts"
                        )),
                    )
                    .await
                } else {
                    tracing::info!(agent = %self.opts.name, id = %msg.short_id, attempt, "injected text not seen; retrying");
                    // Clear whatever part of it reached the input line.
                    let _ = self.input.write(&b"\x15"[..]).await;
                    Stage::WaitReady {
                        msg,
                        since: now,
                        attempt: attempt + 1,
                    }
                }
            }
            Stage::Enter {
                msg, text, forced, ..
            } => {
                let before = self.screen_fingerprint();
                let _ = self.input.write(&b"\r"[..]).await;
                Stage::VerifyEnter {
                    msg,
                    text,
                    before,
                    deadline: now + self.opts.inject.verify_enter,
                    presses: 1,
                    forced,
                }
            }
            Stage::VerifyEnter {
                msg,
                text,
                before,
                presses,
                forced,
                ..
            } => {
                if self.screen_fingerprint() != before {
                    self.finish(*msg, Outcome::Delivered).await
                } else if presses < 2 {
                    // The Enter may have been swallowed by a redraw: press it once more.
                    let _ = self.input.write(&b"\r"[..]).await;
                    Stage::VerifyEnter {
                        msg,
                        text,
                        before,
                        deadline: now + self.opts.inject.verify_enter,
                        presses: presses + 1,
                        forced,
                    }
                } else {
                    self.finish(*msg, Outcome::Unverified).await
                }
            }
        };
    }

    fn screen_fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.screen.visible_text().hash(&mut h);
        self.screen.cursor().hash(&mut h);
        self.screen.total_bytes().hash(&mut h);
        h.finish()
    }

    async fn type_message(&mut self, msg: Box<Incoming>, attempt: u32, forced: bool) -> Stage {
        let paste = self.screen.bracketed_paste() && self.profile.paste_multiline;
        let multiline = if paste {
            Multiline::Paste
        } else {
            Multiline::Flatten
        };
        let text = format_injection(&msg, self.opts.inject.max_body_chars, multiline);
        self.detector.note_injected(&text);
        let bytes = if paste && text.contains('\n') {
            format!("\x1b[200~{text}\x1b[201~")
        } else {
            text.clone()
        };
        self.explicit_ready = false;
        if !self.input.write(bytes.into_bytes()).await {
            return self
                .finish(
                    *msg,
                    Outcome::Failed("the agent does not read its input".into()),
                )
                .await;
        }
        Stage::VerifyText {
            msg,
            text,
            deadline: Instant::now() + self.opts.inject.verify_text,
            attempt,
            forced,
        }
    }

    async fn finish(&mut self, msg: Incoming, outcome: Outcome) -> Stage {
        match &outcome {
            Outcome::Delivered => self.stats.delivered += 1,
            Outcome::Unverified => self.stats.unverified += 1,
            Outcome::Failed(_) => self.stats.failed += 1,
        }
        tracing::info!(agent = %self.opts.name, id = %msg.short_id, from = %msg.from, ?outcome, "injection finished");
        if let Some(id) = &msg.delivery_id {
            match &outcome {
                Outcome::Delivered | Outcome::Unverified => {
                    let _ = self.client.ack(id, msg.seq).await;
                    if let Some(corr) = &msg.sync_correlation {
                        let verdict = if outcome == Outcome::Delivered {
                            "delivered"
                        } else {
                            "unverified"
                        };
                        let _ = self
                            .client
                            .sync_ack(
                                id,
                                corr,
                                &msg.from,
                                true,
                                Some(serde_json::json!({ "injection": verdict })),
                            )
                            .await;
                    }
                }
                Outcome::Failed(reason) => {
                    // Unacknowledged: the daemon redelivers it, and dead-letters it in the end.
                    self.queue.forget(id);
                    tracing::warn!(agent = %self.opts.name, id = %msg.short_id, %reason, "injection failed; leaving the message to the daemon's redelivery");
                }
            }
        }
        Stage::Idle {
            until: Instant::now() + self.opts.inject.gap,
        }
    }

    async fn report_crash(&mut self, code: i32) {
        let tail = self.screen.tail_text(15);
        let body = format!(
            "AGENT CRASHED: \"{}\" exited with code {code}. Last output:\n{}",
            self.opts.name,
            tail.join("\n")
        );
        let data = serde_json::json!({
            "_agentCrash": {
                "agent": self.opts.name,
                "exitCode": code,
                "pid": self.child.pid,
                "cli": self.opts.cli_label,
            },
            "isSystemMessage": true,
        });
        let mut targets = vec!["@users".to_string()];
        if let Some(s) = &self.opts.spawner {
            if s != &self.opts.name {
                targets.push(s.clone());
            }
        }
        for to in targets {
            let mut opts = relay_client::SendOptions::new(&to, &body);
            if let serde_json::Value::Object(map) = data.clone() {
                opts = opts.data(map);
            }
            opts = opts.importance(90);
            if let Err(e) = self.client.send(opts).await {
                tracing::warn!(agent = %self.opts.name, error = %e, "cannot report the crash");
            }
        }
        // Give the frames a moment to leave before the connection closes.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn display_sender(m: &relay_client::Delivered) -> String {
    if m.from == "_DashboardUI" {
        if let Some(name) = m
            .payload
            .data
            .as_ref()
            .and_then(|d| d.get("senderName"))
            .and_then(|v| v.as_str())
        {
            return name.to_string();
        }
    }
    m.from.clone()
}

fn stage_message(stage: &Stage) -> Option<&Incoming> {
    match stage {
        Stage::Idle { .. } => None,
        Stage::WaitReady { msg, .. }
        | Stage::VerifyText { msg, .. }
        | Stage::Enter { msg, .. }
        | Stage::VerifyEnter { msg, .. } => Some(msg),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn recv_opt(rx: &mut Option<mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_signal(sig: &mut Option<tokio::signal::unix::Signal>) {
    match sig {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

pub(crate) fn grammar_options() -> GrammarOptions {
    GrammarOptions::default()
}
