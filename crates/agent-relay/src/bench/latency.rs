//! `bench latency`: A sends to B, B acknowledges and sends it back, A acknowledges; the time
//! from A's send to the echo's arrival is one round trip.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::oneshot;

use super::raw::{self, Incoming, RawConn};
use super::{
    bench_keys, command_line, forget_agents, make_body, new_histogram, parse_tag, percentiles,
    print_percentiles, rate_limit_hint, record, run_suffix, signed_with,
};
use crate::cli::LatencyArgs;
use crate::context::Ctx;

/// How long one round trip may take before the run is abandoned.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Refusals of one message before the run is abandoned.
const MAX_ATTEMPTS: u64 = 1000;

enum Reply {
    /// The echo arrived at this instant.
    Back(Instant),
    Busy(u64),
    Nack,
}

#[derive(Default)]
struct Refusals {
    busy: u64,
    nack: u64,
}

pub async fn run(ctx: &Ctx, args: &LatencyArgs) -> anyhow::Result<ExitCode> {
    let suffix = run_suffix();
    let a_name = format!("bench-a-{suffix}");
    let b_name = format!("bench-b-{suffix}");
    let keys = bench_keys(ctx, args.sign, &[a_name.clone(), b_name.clone()]).await?;
    let a_signer = keys.as_ref().and_then(|k| k.signer(&a_name));
    let b_signer = keys.as_ref().and_then(|k| k.signer(&b_name));
    let a = raw::connect(ctx, &a_name).await?;
    let b = raw::connect(ctx, &b_name).await?;
    let (stop_tx, stop_rx) = oneshot::channel();
    let echo_task = tokio::spawn(echo(b, a_name.clone(), suffix.clone(), b_signer, stop_rx));

    let RawConn {
        mut reader,
        mut writer,
    } = a;
    let mut hist = new_histogram()?;
    let mut refused = Refusals::default();
    let total = args.warmup + args.count;
    let mut started = Instant::now();
    for i in 0..total {
        if i == args.warmup {
            started = Instant::now();
        }
        let mut attempt = 0;
        loop {
            let body = make_body(&format!("{i}:{attempt}"), args.size);
            let env = raw::signed_send(
                a_signer.as_ref(),
                &b_name,
                &body,
                format!("{suffix}-{i}-{attempt}"),
            )?;
            let sent_id = env.id.clone();
            let t0 = Instant::now();
            // Also writes the ACK of the previous echo.
            raw::send_now(&mut writer, &env).await?;
            let reply = tokio::time::timeout(
                REPLY_TIMEOUT,
                wait_reply(&mut reader, &mut writer, &sent_id, [i, attempt]),
            )
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "message {i} got no echo within {} s ({} busy, {} nack so far)",
                    REPLY_TIMEOUT.as_secs(),
                    refused.busy,
                    refused.nack
                )
            })??;
            match reply {
                Reply::Back(at) => {
                    if i >= args.warmup {
                        record(&mut hist, at.duration_since(t0));
                    }
                    break;
                }
                Reply::Busy(ms) => {
                    refused.busy += 1;
                    tokio::time::sleep(Duration::from_millis(ms.max(1))).await;
                }
                Reply::Nack => {
                    refused.nack += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            attempt += 1;
            if attempt >= MAX_ATTEMPTS {
                rate_limit_hint(refused.busy + refused.nack, i + 1);
                anyhow::bail!("message {i} was refused {MAX_ATTEMPTS} times");
            }
        }
    }
    let elapsed = started.elapsed();
    raw::bye(&mut writer).await;
    // The echo task may already have ended on the daemon's side.
    let _ = stop_tx.send(());
    let echo_refused = echo_task.await??;
    drop((reader, writer));
    forget_agents(ctx, &[a_name, b_name]).await;
    let signed = signed_with(keys.as_ref());
    drop(keys);

    let rtt_per_sec = args.count as f64 / elapsed.as_secs_f64().max(1e-9);
    let busy = refused.busy + echo_refused.busy;
    let nack = refused.nack + echo_refused.nack;
    let mut params = vec![
        ("count", args.count.to_string()),
        ("warmup", args.warmup.to_string()),
        ("size", args.size.to_string()),
    ];
    if args.sign.is_some() {
        params.push(("sign", signed.to_string()));
    }
    let command = command_line(ctx, "latency", &params, args.json);
    if args.json {
        let mut out = json!({
            "bench": "latency",
            "count": args.count,
            "warmup": args.warmup,
            "size": args.size,
            "elapsed_ms": elapsed.as_millis() as u64,
            "round_trips_per_sec": rtt_per_sec.round(),
            "busy": busy,
            "nack": nack,
            "signed": args.sign.map(|_| signed),
            "command": command,
        });
        if let (Some(o), serde_json::Value::Object(p)) = (out.as_object_mut(), percentiles(&hist)) {
            o.extend(p);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let signing = if args.sign.is_some() {
            format!(", every message signed with {signed}")
        } else {
            String::new()
        };
        println!(
            "bench latency: {} round trips A -> B -> A, {}-byte bodies, {} warm-up{signing}",
            args.count, args.size, args.warmup
        );
        print_percentiles(&hist);
        println!("  round trips/s {rtt_per_sec:.0}");
        println!("  refused       {busy} busy, {nack} nack");
        println!("command: {command}");
    }
    rate_limit_hint(busy + nack, total);
    Ok(ExitCode::SUCCESS)
}

/// Reads until the echo of message `tag` arrives, or the send is refused.
async fn wait_reply(
    reader: &mut raw::Reader,
    writer: &mut raw::Writer,
    sent_id: &str,
    tag: [u64; 2],
) -> anyhow::Result<Reply> {
    loop {
        let item = raw::next(reader).await?;
        let at = Instant::now();
        match item {
            Incoming::Deliver { id, seq, body } => {
                raw::feed(writer, &raw::ack(&id, seq)).await?;
                if parse_tag::<2>(&body) == Some(tag) {
                    return Ok(Reply::Back(at));
                }
                // An echo of an earlier attempt: acknowledged, otherwise ignored.
            }
            Incoming::Ping(env) => raw::send_now(writer, &raw::pong(env)).await?,
            Incoming::Busy(b) => return Ok(Reply::Busy(b.retry_after_ms)),
            Incoming::Nack(n) if n.ack_id == sent_id => return Ok(Reply::Nack),
            Incoming::Error(e) if e.fatal || e.reply_to.as_deref() == Some(sent_id) => {
                anyhow::bail!("the daemon rejected the benchmark message: {}", e.message)
            }
            Incoming::Bye => anyhow::bail!("the daemon ended the benchmark connection"),
            _ => {}
        }
    }
}

/// B: acknowledges every DELIVER and sends its body back to A; re-sends an echo the daemon
/// refused.
async fn echo(
    conn: RawConn,
    to: String,
    suffix: String,
    signer: Option<raw::Signer>,
    mut stop: oneshot::Receiver<()>,
) -> anyhow::Result<Refusals> {
    let RawConn {
        mut reader,
        mut writer,
    } = conn;
    let mut refused = Refusals::default();
    let mut n: u64 = 0;
    let mut last: Option<(String, String)> = None;
    loop {
        let item = tokio::select! {
            item = raw::next(&mut reader) => item?,
            _ = &mut stop => break,
        };
        let resend_after = match item {
            Incoming::Deliver { id, seq, body } => {
                raw::feed(&mut writer, &raw::ack(&id, seq)).await?;
                let echo_id = format!("{suffix}-echo-{n}");
                n += 1;
                let env = raw::signed_send(signer.as_ref(), &to, &body, echo_id.clone())?;
                raw::send_now(&mut writer, &env).await?;
                last = Some((echo_id, body));
                None
            }
            Incoming::Ping(env) => {
                raw::send_now(&mut writer, &raw::pong(env)).await?;
                None
            }
            Incoming::Busy(b) => {
                refused.busy += 1;
                Some(b.retry_after_ms.max(1))
            }
            Incoming::Nack(nack) if last.as_ref().is_some_and(|(id, _)| *id == nack.ack_id) => {
                refused.nack += 1;
                Some(10)
            }
            Incoming::Bye => break,
            _ => None,
        };
        if let (Some(ms), Some((_, body))) = (resend_after, last.as_ref()) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let echo_id = format!("{suffix}-echo-{n}");
            n += 1;
            let body = body.clone();
            let env = raw::signed_send(signer.as_ref(), &to, &body, echo_id.clone())?;
            raw::send_now(&mut writer, &env).await?;
            last = Some((echo_id, body));
        }
    }
    raw::bye(&mut writer).await;
    Ok(refused)
}
