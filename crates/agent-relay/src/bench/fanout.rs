//! `bench fanout`: one sender broadcasts (`to: "*"`) to N receivers, one message at a time;
//! the latency of a message is the time until the last receiver has it.
//!
//! The broadcast carries a topic only the benchmark's receivers subscribe to, so agents
//! working in the project never see benchmark traffic.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{watch, Notify};

use super::raw::{self, Incoming, RawConn};
use super::{
    command_line, forget_agents, make_body, new_histogram, parse_tag, percentiles,
    print_percentiles, rate_limit_hint, record, run_suffix,
};
use crate::cli::FanoutArgs;
use crate::context::Ctx;

/// How long one broadcast may take to reach everyone before the run is abandoned.
const ROUND_TIMEOUT: Duration = Duration::from_secs(10);
/// Refusals of one broadcast before the run is abandoned.
const MAX_ATTEMPTS: u64 = 1000;

enum Outcome {
    /// Every receiver has the broadcast.
    Done,
    /// Refused with BUSY: retry after this many milliseconds.
    Busy(u64),
    Nack,
}

/// The broadcast in progress and who has it.
struct Round {
    seq: AtomicU64,
    received: AtomicU64,
    last_at: Mutex<Option<Instant>>,
    done: Notify,
}

pub async fn run(ctx: &Ctx, args: &FanoutArgs) -> anyhow::Result<ExitCode> {
    let suffix = run_suffix();
    let topic = format!("bench-fanout-{suffix}");
    let sender_name = format!("bench-f-{suffix}");
    let mut names = vec![sender_name.clone()];
    let mut receivers = Vec::new();
    for i in 0..args.agents {
        let name = format!("bench-f{i}-{suffix}");
        let mut conn = raw::connect(ctx, &name).await?;
        let sub = relay_protocol::Envelope::new(
            relay_protocol::MessageType::Subscribe,
            &serde_json::json!({}),
        )
        .topic(topic.clone());
        raw::send_now(&mut conn.writer, &sub).await?;
        // Once STATUS is answered the subscription is in place.
        raw::barrier(&mut conn).await?;
        receivers.push(conn);
        names.push(name);
    }
    let sender = raw::connect(ctx, &sender_name).await?;

    let round = Arc::new(Round {
        seq: AtomicU64::new(u64::MAX),
        received: AtomicU64::new(0),
        last_at: Mutex::new(None),
        done: Notify::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks: Vec<_> = receivers
        .into_iter()
        .map(|conn| {
            tokio::spawn(receive(
                conn,
                args.agents,
                Arc::clone(&round),
                stop_rx.clone(),
            ))
        })
        .collect();

    let RawConn {
        mut reader,
        mut writer,
    } = sender;
    let mut hist = new_histogram()?;
    let (mut busy, mut nack) = (0u64, 0u64);
    let total = args.warmup + args.count;
    let mut started = Instant::now();
    for i in 0..total {
        if i == args.warmup {
            started = Instant::now();
        }
        let mut attempt = 0;
        loop {
            round.received.store(0, Ordering::SeqCst);
            if let Ok(mut last) = round.last_at.lock() {
                *last = None;
            }
            round.seq.store(i, Ordering::SeqCst);
            let body = make_body(&format!("{i}:{attempt}"), args.size);
            let env = raw::send_envelope("*", &body, format!("{suffix}-{i}-{attempt}"))
                .topic(topic.clone());
            let sent_id = env.id.clone();
            let t0 = Instant::now();
            raw::send_now(&mut writer, &env).await?;
            let outcome = tokio::time::timeout(ROUND_TIMEOUT, async {
                loop {
                    tokio::select! {
                        _ = round.done.notified() => {
                            if round.received.load(Ordering::SeqCst) >= args.agents {
                                return Ok::<_, anyhow::Error>(Outcome::Done);
                            }
                        }
                        item = raw::next(&mut reader) => match item? {
                            Incoming::Busy(b) => return Ok(Outcome::Busy(b.retry_after_ms.max(1))),
                            Incoming::Nack(n) if n.ack_id == sent_id => return Ok(Outcome::Nack),
                            Incoming::Ping(env) => raw::send_now(&mut writer, &raw::pong(env)).await?,
                            Incoming::Error(e) if e.fatal || e.reply_to.as_deref() == Some(sent_id.as_str()) => {
                                anyhow::bail!("the daemon rejected the broadcast: {}", e.message)
                            }
                            Incoming::Bye => anyhow::bail!("the daemon ended the sender's connection"),
                            _ => {}
                        },
                    }
                }
            })
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "broadcast {i} reached only {} of {} receivers within {} s",
                    round.received.load(Ordering::SeqCst),
                    args.agents,
                    ROUND_TIMEOUT.as_secs()
                )
            })??;
            match outcome {
                Outcome::Done => {
                    let last = round.last_at.lock().ok().and_then(|l| *l);
                    if i >= args.warmup {
                        record(
                            &mut hist,
                            last.unwrap_or_else(Instant::now).duration_since(t0),
                        );
                    }
                    break;
                }
                Outcome::Busy(retry_ms) => {
                    busy += 1;
                    tokio::time::sleep(Duration::from_millis(retry_ms)).await;
                }
                Outcome::Nack => {
                    nack += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            attempt += 1;
            if attempt >= MAX_ATTEMPTS {
                rate_limit_hint(busy + nack, i + 1);
                anyhow::bail!("broadcast {i} was refused {MAX_ATTEMPTS} times");
            }
        }
    }
    let elapsed = started.elapsed();
    raw::bye(&mut writer).await;
    let _ = stop_tx.send(true);
    let mut duplicates = 0;
    for t in tasks {
        duplicates += t.await??;
    }
    drop((reader, writer));
    forget_agents(ctx, &names).await;

    let per_sec = args.count as f64 / elapsed.as_secs_f64().max(1e-9);
    let params = [
        ("agents", args.agents.to_string()),
        ("count", args.count.to_string()),
        ("warmup", args.warmup.to_string()),
        ("size", args.size.to_string()),
    ];
    let command = command_line(ctx, "fanout", &params, args.json);
    if args.json {
        let mut out = json!({
            "bench": "fanout",
            "agents": args.agents,
            "count": args.count,
            "warmup": args.warmup,
            "size": args.size,
            "elapsed_ms": elapsed.as_millis() as u64,
            "broadcasts_per_sec": per_sec.round(),
            "deliveries_per_sec": (per_sec * args.agents as f64).round(),
            "duplicates": duplicates,
            "busy": busy,
            "nack": nack,
            "command": command,
        });
        if let (Some(o), serde_json::Value::Object(p)) = (out.as_object_mut(), percentiles(&hist)) {
            o.extend(p);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "bench fanout: {} broadcasts to {} receivers, {}-byte bodies, {} warm-up (time until the last receiver has it)",
            args.count, args.agents, args.size, args.warmup
        );
        print_percentiles(&hist);
        println!(
            "  broadcasts/s  {per_sec:.0} ({:.0} deliveries/s)",
            per_sec * args.agents as f64
        );
        println!("  duplicates    {duplicates}");
        println!("  refused       {busy} busy, {nack} nack");
        println!("command: {command}");
    }
    rate_limit_hint(busy + nack, total);
    Ok(ExitCode::SUCCESS)
}

/// A receiver: acknowledges everything, counts itself in for the current round once.
/// Returns the number of duplicate deliveries it saw.
async fn receive(
    conn: RawConn,
    receivers: u64,
    round: Arc<Round>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<u64> {
    let RawConn {
        mut reader,
        mut writer,
    } = conn;
    let mut duplicates = 0;
    let mut last_tag: Option<[u64; 2]> = None;
    let mut counted_round: Option<u64> = None;
    loop {
        let item = tokio::select! {
            item = raw::next(&mut reader) => item?,
            _ = super::stopped(&mut stop) => break,
        };
        match item {
            Incoming::Deliver { id, seq, body } => {
                raw::send_now(&mut writer, &raw::ack(&id, seq)).await?;
                let tag = parse_tag::<2>(&body);
                if tag.is_some() && tag == last_tag {
                    duplicates += 1;
                    continue;
                }
                last_tag = tag;
                if let Some([n, _]) = tag {
                    // A retried broadcast counts once per receiver.
                    if n == round.seq.load(Ordering::SeqCst) && counted_round != Some(n) {
                        counted_round = Some(n);
                    } else {
                        continue;
                    }
                    if round.received.fetch_add(1, Ordering::SeqCst) + 1 == receivers {
                        if let Ok(mut last) = round.last_at.lock() {
                            *last = Some(Instant::now());
                        }
                        round.done.notify_one();
                    }
                }
            }
            Incoming::Ping(env) => raw::send_now(&mut writer, &raw::pong(env)).await?,
            Incoming::Bye => break,
            _ => {}
        }
    }
    raw::bye(&mut writer).await;
    Ok(duplicates)
}
