//! `bench throughput`: N sender/receiver pairs; each sender keeps at most `window` messages
//! in flight; receivers acknowledge everything and check that each message arrived exactly
//! once.

use std::collections::{HashSet, VecDeque};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use relay_protocol::NackCode;
use serde_json::json;
use tokio::sync::{watch, Notify};

use super::raw::{self, Incoming, RawConn};
use super::{
    bench_keys, command_line, forget_agents, make_body, parse_tag, rate_limit_hint, round2,
    run_suffix, signed_with, CpuPerMessage, CpuProbe,
};
use crate::cli::ThroughputArgs;
use crate::context::Ctx;

/// Frames a sender writes per flush at most.
const BATCH: u64 = 64;
/// A sender whose window stays full without any delivery for this long gives up.
const STALL: Duration = Duration::from_secs(10);
/// How long a sender pauses after a NACK with code BUSY (it carries no retry hint).
const NACK_PAUSE: Duration = Duration::from_millis(10);
/// After the senders finish: how long without new deliveries before counting losses.
const DRAIN_IDLE: Duration = Duration::from_secs(5);

/// What a sender and its receiver share.
#[derive(Default)]
struct Pair {
    /// Unique messages the receiver got.
    delivered: AtomicU64,
    /// Refused messages (NACK BUSY) not yet sent again.
    refused: AtomicU64,
    /// The sender has sent everything (or gave up).
    sending_done: AtomicBool,
    notify: Notify,
}

#[derive(Default)]
struct SenderStats {
    sent: u64,
    /// SENDs repeated after a NACK BUSY.
    resent: u64,
    busy: u64,
    nack: u64,
    /// NACKs from the daemon's rate limiter (the others are backpressure).
    rate_limited: u64,
    errors: u64,
    stalled: bool,
}

#[derive(Default)]
struct ReceiverStats {
    unique: u64,
    duplicate_ids: u64,
    duplicate_seqs: u64,
    unexpected: u64,
    last_at: Option<Instant>,
}

/// What one throughput run found.
pub struct Outcome {
    pub pairs: u64,
    pub per_pair: u64,
    pub size: usize,
    pub window: u64,
    pub expected: u64,
    sent: SenderStats,
    got: ReceiverStats,
    pub elapsed: Duration,
    /// CPU time per message, when the daemon reports its own.
    pub cpu_us: Option<CpuPerMessage>,
    /// The algorithm the messages were signed with (`--sign`).
    pub signed: Option<&'static str>,
    /// The command line that repeats the run.
    pub command: String,
}

impl Outcome {
    /// Unique deliveries per second.
    pub fn rate(&self) -> f64 {
        self.got.unique as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Expected messages that never arrived.
    pub fn losses(&self) -> u64 {
        self.expected.saturating_sub(self.got.unique)
    }

    /// Every message arrived exactly once.
    pub fn clean(&self) -> bool {
        self.losses() == 0 && self.got.duplicate_ids == 0 && self.got.duplicate_seqs == 0
    }

    /// A one-second run of `expected` messages of which `unique` arrived, `duplicate_ids` more
    /// than once.
    #[cfg(test)]
    pub(crate) fn counted(expected: u64, unique: u64, duplicate_ids: u64) -> Outcome {
        Outcome {
            pairs: 1,
            per_pair: expected,
            size: 100,
            window: 1000,
            expected,
            sent: SenderStats {
                sent: expected,
                ..SenderStats::default()
            },
            got: ReceiverStats {
                unique,
                duplicate_ids,
                ..ReceiverStats::default()
            },
            elapsed: Duration::from_secs(1),
            cpu_us: None,
            signed: None,
            command: String::new(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "bench": "throughput",
            "pairs": self.pairs,
            "messages_per_pair": self.per_pair,
            "size": self.size,
            "window": self.window,
            "expected": self.expected,
            "sent": self.sent.sent,
            "delivered_unique": self.got.unique,
            "elapsed_ms": self.elapsed.as_millis() as u64,
            "messages_per_sec": self.rate().round(),
            "duplicates_by_id": self.got.duplicate_ids,
            "duplicates_by_seq": self.got.duplicate_seqs,
            "losses": self.losses(),
            "busy": self.sent.busy,
            "nack": self.sent.nack,
            "rate_limited": self.sent.rate_limited,
            "resent": self.sent.resent,
            "errors": self.sent.errors,
            "unexpected": self.got.unexpected,
            "stalled": self.sent.stalled,
            "signed": self.signed,
            "cpu_us_per_message": self.cpu_us.map(|cpu| {
                json!({
                    "daemon": round2(cpu.daemon),
                    "storage": cpu.storage.map(round2),
                    "client": round2(cpu.client),
                })
            }),
            "command": self.command,
        })
    }

    fn print_text(&self) {
        let (pairs, per_pair, expected) = (self.pairs, self.per_pair, self.expected);
        let signing = match &self.signed {
            Some(signed) => format!(", every message signed with {signed}"),
            None => String::new(),
        };
        println!(
            "bench throughput: {pairs} pairs x {per_pair} messages, {}-byte bodies, window {}{signing}",
            self.size, self.window
        );
        println!(
            "  delivered     {} of {expected} in {:.2} s",
            self.got.unique,
            self.elapsed.as_secs_f64()
        );
        println!("  messages/s    {:.0}", self.rate());
        println!(
            "  duplicates    {} by id, {} by (sender, seq)",
            self.got.duplicate_ids, self.got.duplicate_seqs
        );
        println!("  losses        {}", self.losses());
        if let Some(cpu) = self.cpu_us {
            let storage = cpu
                .storage
                .map(|s| format!(", of which the storage thread {s:.2} µs"))
                .unwrap_or_default();
            println!(
                "  cpu/message   daemon {:.2} µs{storage}; bench clients {:.2} µs",
                cpu.daemon, cpu.client
            );
        }
        println!(
            "  backpressure  {} BUSY (advisory), {} NACK BUSY (sent again: {})",
            self.sent.busy, self.sent.nack, self.sent.resent
        );
        if self.sent.errors > 0 || self.got.unexpected > 0 {
            println!(
                "  anomalies     {} errors, {} unexpected deliveries",
                self.sent.errors, self.got.unexpected
            );
        }
        if self.sent.stalled {
            println!(
                "  a sender stalled: no delivery for {} s with a full window",
                STALL.as_secs()
            );
        }
        println!("command: {}", self.command);
    }
}

pub async fn run(ctx: &Ctx, args: &ThroughputArgs) -> anyhow::Result<ExitCode> {
    let outcome = measure(ctx, args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome.to_json())?);
    } else {
        outcome.print_text();
    }
    // NACK BUSY from backpressure is expected here and handled (sent again); only the rate
    // limiter's refusals mean the daemon is not configured for a benchmark.
    rate_limit_hint(outcome.sent.rate_limited, outcome.sent.sent);
    Ok(if outcome.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs the benchmark against `ctx`'s daemon; prints nothing.
pub async fn measure(ctx: &Ctx, args: &ThroughputArgs) -> anyhow::Result<Outcome> {
    let suffix = run_suffix();
    let pairs = args.pairs;
    let per_pair = args.messages;
    let sender_names: Vec<String> = (0..pairs).map(|i| format!("bench-s{i}-{suffix}")).collect();
    // Only senders send SENDs, so only they need keys.
    let keys = bench_keys(ctx, args.sign, &sender_names).await?;
    let mut names = Vec::new();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for (i, s) in sender_names.into_iter().enumerate() {
        let r = format!("bench-r{i}-{suffix}");
        let signer = keys.as_ref().and_then(|k| k.signer(&s));
        senders.push((raw::connect(ctx, &s).await?, r.clone(), signer));
        receivers.push(raw::connect(ctx, &r).await?);
        names.push(s);
        names.push(r);
    }
    let shared: Vec<Arc<Pair>> = (0..pairs).map(|_| Arc::new(Pair::default())).collect();
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut receiver_tasks = Vec::new();
    for (i, conn) in receivers.into_iter().enumerate() {
        let pair = Arc::clone(&shared[i]);
        let stop = stop_rx.clone();
        receiver_tasks.push(tokio::spawn(receive(conn, i as u64, per_pair, pair, stop)));
    }
    let probe_name = format!("bench-cpu-{suffix}");
    let probe = CpuProbe::start(ctx, &probe_name).await;
    names.push(probe_name);
    let started = Instant::now();
    let mut sender_tasks = Vec::new();
    for (i, (conn, to, signer)) in senders.into_iter().enumerate() {
        let job = SendJob {
            index: i as u64,
            to,
            signer,
            count: per_pair,
            window: args.window,
            size: args.size,
            id_prefix: format!("{suffix}-{i}"),
        };
        let pair = Arc::clone(&shared[i]);
        sender_tasks.push(tokio::spawn(send(conn, job, pair, stop_rx.clone())));
    }

    // Drain: wait until every message is accounted for, or deliveries stop coming.
    let expected = pairs * per_pair;
    let sum = |f: fn(&Pair) -> u64| -> u64 { shared.iter().map(|p| f(p)).sum() };
    let mut last_total = 0;
    let mut last_change = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let delivered = sum(|p| p.delivered.load(Ordering::Relaxed));
        let refused = sum(|p| p.refused.load(Ordering::Relaxed));
        let all_sent = shared
            .iter()
            .all(|p| p.sending_done.load(Ordering::Relaxed));
        if delivered >= expected || (all_sent && delivered + refused >= expected) {
            break;
        }
        if delivered != last_total {
            last_total = delivered;
            last_change = Instant::now();
        } else if all_sent && last_change.elapsed() >= DRAIN_IDLE {
            break;
        }
        if !all_sent && sender_tasks.iter().any(|t| t.is_finished()) {
            // A sender failed; its error is reported below.
            break;
        }
    }
    let own_cpu_end = relay_daemon::cpu_time();
    // Let late duplicates and refusals arrive before stopping everyone.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop_tx.send(true);

    let mut sent = SenderStats::default();
    for t in sender_tasks {
        let s = t.await??;
        sent.sent += s.sent;
        sent.busy += s.busy;
        sent.nack += s.nack;
        sent.rate_limited += s.rate_limited;
        sent.resent += s.resent;
        sent.errors += s.errors;
        sent.stalled |= s.stalled;
    }
    let mut got = ReceiverStats::default();
    for t in receiver_tasks {
        let r = t.await??;
        got.unique += r.unique;
        got.duplicate_ids += r.duplicate_ids;
        got.duplicate_seqs += r.duplicate_seqs;
        got.unexpected += r.unexpected;
        got.last_at = got.last_at.max(r.last_at);
    }
    let cpu = match probe {
        Some(p) => p.finish(own_cpu_end).await,
        None => None,
    };
    forget_agents(ctx, &names).await;
    let signed = signed_with(keys.as_ref());
    drop(keys);

    let elapsed = got
        .last_at
        .map(|t| t.duration_since(started))
        .unwrap_or_else(|| started.elapsed());
    let cpu_us = cpu.map(|c| c.per_message_us(got.unique));
    let mut params = vec![
        ("pairs", pairs.to_string()),
        ("messages", per_pair.to_string()),
        ("size", args.size.to_string()),
        ("window", args.window.to_string()),
    ];
    if args.sign.is_some() {
        params.push(("sign", signed.to_string()));
    }
    let command = command_line(ctx, "throughput", &params, args.json);
    Ok(Outcome {
        pairs,
        per_pair,
        size: args.size,
        window: args.window,
        expected,
        sent,
        got,
        elapsed,
        cpu_us,
        signed: args.sign.map(|_| signed),
        command,
    })
}

struct SendJob {
    index: u64,
    to: String,
    /// Signs every SEND (`--sign`).
    signer: Option<raw::Signer>,
    count: u64,
    window: u64,
    size: usize,
    id_prefix: String,
}

async fn send(
    conn: RawConn,
    job: SendJob,
    pair: Arc<Pair>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<SenderStats> {
    let RawConn {
        mut reader,
        mut writer,
    } = conn;
    let mut stats = SenderStats::default();
    let mut pause_until: Option<Instant> = None;
    let mut progress = (0u64, Instant::now());
    let mut seq = 0u64;
    // Sequence numbers the daemon refused (NACK BUSY): a correct client sends them again.
    let mut retry: VecDeque<u64> = VecDeque::new();
    let mut resends = 0u64;
    let id_prefix = format!("{}-", job.id_prefix);
    while pair.delivered.load(Ordering::Relaxed) < job.count {
        let delivered = pair.delivered.load(Ordering::Relaxed);
        let in_flight = seq.saturating_sub(delivered + retry.len() as u64);
        let now = Instant::now();
        let paused = pause_until.is_some_and(|t| t > now);
        let ready = !retry.is_empty() || seq < job.count;
        if !paused && ready && in_flight < job.window {
            let n = (job.window - in_flight).min(BATCH);
            for _ in 0..n {
                let (this, id) = if let Some(again) = retry.pop_front() {
                    resends += 1;
                    (again, format!("{id_prefix}{again}-r{resends}"))
                } else if seq < job.count {
                    seq += 1;
                    (seq - 1, format!("{id_prefix}{}", seq - 1))
                } else {
                    break;
                };
                let body = make_body(&format!("{}:{this}", job.index), job.size);
                let env = raw::signed_send(job.signer.as_ref(), &job.to, &body, id)?;
                raw::feed(&mut writer, &env).await?;
            }
            raw::flush(&mut writer).await?;
            stats.sent = seq;
            stats.resent = resends;
            while let Some(item) = raw::next(&mut reader).now_or_never() {
                handle(
                    item?,
                    &mut writer,
                    &mut stats,
                    &mut pause_until,
                    &id_prefix,
                    &mut retry,
                )
                .await?;
            }
            continue;
        }
        if delivered != progress.0 {
            progress = (delivered, now);
        } else if now.duration_since(progress.1) > STALL {
            stats.stalled = true;
            break;
        }
        let nap = pause_until
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(50))
            .max(Duration::from_millis(1));
        tokio::select! {
            _ = pair.notify.notified() => {}
            item = raw::next(&mut reader) => handle(item?, &mut writer, &mut stats, &mut pause_until, &id_prefix, &mut retry).await?,
            _ = tokio::time::sleep(nap) => {}
        }
    }
    pair.refused.store(retry.len() as u64, Ordering::Relaxed);
    pair.sending_done.store(true, Ordering::Relaxed);
    // Keep answering PINGs and counting late refusals until the run ends.
    loop {
        tokio::select! {
            item = raw::next(&mut reader) => {
                handle(item?, &mut writer, &mut stats, &mut pause_until, &id_prefix, &mut retry).await?;
                pair.refused.store(retry.len() as u64, Ordering::Relaxed);
            }
            _ = super::stopped(&mut stop) => break,
        }
    }
    raw::bye(&mut writer).await;
    Ok(stats)
}

async fn handle(
    item: Incoming,
    writer: &mut raw::Writer,
    stats: &mut SenderStats,
    pause_until: &mut Option<Instant>,
    id_prefix: &str,
    retry: &mut VecDeque<u64>,
) -> anyhow::Result<()> {
    match item {
        // Advisory: the message was accepted, but the recipient is behind.
        Incoming::Busy(b) => {
            stats.busy += 1;
            *pause_until = Some(Instant::now() + Duration::from_millis(b.retry_after_ms));
        }
        Incoming::Nack(n) => {
            stats.nack += 1;
            if n.is_rate_limit() {
                stats.rate_limited += 1;
            }
            if n.code == Some(NackCode::Busy) {
                *pause_until = Some(Instant::now() + NACK_PAUSE);
                // Refused, not accepted: send it again after the pause.
                let seq = n
                    .ack_id
                    .strip_prefix(id_prefix)
                    .and_then(|rest| rest.split('-').next())
                    .and_then(|s| s.parse::<u64>().ok());
                if let Some(seq) = seq {
                    retry.push_back(seq);
                }
            }
        }
        Incoming::Ping(env) => raw::send_now(writer, &raw::pong(env)).await?,
        Incoming::Error(e) if e.fatal => anyhow::bail!("the daemon closed a sender: {}", e.message),
        Incoming::Error(_) => stats.errors += 1,
        Incoming::Deliver { id, seq, .. } => raw::send_now(writer, &raw::ack(&id, seq)).await?,
        Incoming::Bye => anyhow::bail!("the daemon ended a sender's connection"),
        Incoming::Other(_) => {}
    }
    Ok(())
}

async fn receive(
    conn: RawConn,
    index: u64,
    count: u64,
    pair: Arc<Pair>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<ReceiverStats> {
    let RawConn {
        mut reader,
        mut writer,
    } = conn;
    let mut stats = ReceiverStats::default();
    let mut seen_ids: HashSet<String> = HashSet::with_capacity(count.min(1 << 20) as usize);
    let mut seen_seqs = vec![false; count as usize];
    loop {
        let first = tokio::select! {
            item = raw::next(&mut reader) => item?,
            _ = super::stopped(&mut stop) => break,
        };
        let mut item = Some(first);
        // Handle everything already buffered, then flush the ACKs once.
        while let Some(it) = item.take() {
            match it {
                Incoming::Deliver { id, seq, body } => {
                    raw::feed(&mut writer, &raw::ack(&id, seq)).await?;
                    if !seen_ids.insert(id) {
                        stats.duplicate_ids += 1;
                    } else {
                        match parse_tag::<2>(&body) {
                            Some([sender, n]) if sender == index && n < count => {
                                let slot = &mut seen_seqs[n as usize];
                                if *slot {
                                    stats.duplicate_seqs += 1;
                                } else {
                                    *slot = true;
                                    stats.unique += 1;
                                    stats.last_at = Some(Instant::now());
                                    pair.delivered.fetch_add(1, Ordering::Relaxed);
                                    pair.notify.notify_one();
                                }
                            }
                            _ => stats.unexpected += 1,
                        }
                    }
                }
                Incoming::Ping(env) => raw::feed(&mut writer, &raw::pong(env)).await?,
                Incoming::Bye => anyhow::bail!("the daemon ended a receiver's connection"),
                _ => {}
            }
            item = match raw::next(&mut reader).now_or_never() {
                Some(next) => Some(next?),
                None => None,
            };
        }
        raw::flush(&mut writer).await?;
    }
    raw::bye(&mut writer).await;
    Ok(stats)
}
