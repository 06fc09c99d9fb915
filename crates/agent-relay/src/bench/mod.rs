//! `agent-relay bench`: measurements against a running daemon (`signing` starts daemons of
//! its own, to compare configurations).
//!
//! The benchmarks speak raw frames over their own Unix sockets instead of using
//! `relay-client`, so that what they measure is the daemon, not client overhead.

pub mod fanout;
pub mod latency;
mod raw;
pub mod signing;
pub mod throughput;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use relay_protocol::now_ms;
use relay_signing::{Algorithm, Keystore, SharedSecret};
use serde_json::{json, Value};

use crate::context::Ctx;

/// A refusal count above this (per mille of sent messages) prints the rate-limit hint.
const HINT_PER_MILLE: u64 = 1;

/// Resolves once the run is over (the flag is set or its sender is gone).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard returned by `wait_for` must not live across an await point of the caller.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// A random suffix so repeated runs never collide on agent names.
fn run_suffix() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(6)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// A body of `size` bytes (at least the tag) starting with `tag:`.
fn make_body(tag: &str, size: usize) -> String {
    let mut body = format!("{tag}:");
    if body.len() < size {
        body.push_str(&"x".repeat(size - body.len()));
    }
    body
}

/// The first `n` colon-separated numbers of a body made by [`make_body`].
fn parse_tag<const N: usize>(body: &str) -> Option<[u64; N]> {
    let mut out = [0u64; N];
    let mut parts = body.split(':');
    for slot in out.iter_mut() {
        *slot = parts.next()?.parse().ok()?;
    }
    Some(out)
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 µs .. 60 s at 3 significant digits.
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(us);
}

/// Percentiles in microseconds as JSON fields.
fn percentiles(h: &Histogram<u64>) -> Value {
    json!({
        "p50_us": h.value_at_quantile(0.50),
        "p90_us": h.value_at_quantile(0.90),
        "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999),
        "max_us": h.max(),
        "mean_us": (h.mean() * 10.0).round() / 10.0,
    })
}

fn print_percentiles(h: &Histogram<u64>) {
    for (label, q) in [
        ("p50", 0.50),
        ("p90", 0.90),
        ("p99", 0.99),
        ("p99.9", 0.999),
    ] {
        println!("  {label:<6} {:>9} µs", h.value_at_quantile(q));
    }
    println!("  {:<6} {:>9} µs", "max", h.max());
}

/// The command line that reproduces this run against the same daemon.
fn command_line(ctx: &Ctx, bench: &str, params: &[(&str, String)], json: bool) -> String {
    let program = format!("agent-relay --socket {}", ctx.socket.display());
    command_line_of(program, bench, params, json)
}

/// `program` (the executable and its global options), then `bench <bench>` with `params` as
/// `--name value` options and `--json` when asked.
fn command_line_of(program: String, bench: &str, params: &[(&str, String)], json: bool) -> String {
    let mut s = format!("{program} bench {bench}");
    for (k, v) in params {
        s.push_str(&format!(" --{k} {v}"));
    }
    if json {
        s.push_str(" --json");
    }
    s
}

/// `v` to two decimals, for reports.
fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Prints the rate-limit hint when refusals are noticeable.
fn rate_limit_hint(refused: u64, sent: u64) {
    if refused > 0 && refused.saturating_mul(1000) >= sent.max(1) * HINT_PER_MILLE {
        eprintln!(
            "rate limited: run the daemon with -c limits.rate_limit_enabled=false \
             ({refused} refusals with BUSY/NACK for {sent} messages)"
        );
    }
}

/// How long the daemon needs to load new key files (it re-reads them every second).
const KEY_LOAD_WAIT: Duration = Duration::from_millis(1500);

/// The signing keys of one run (`--sign`): key files made for the run's agents in the
/// project's key directory, removed again when this is dropped; or, when the configuration
/// has `signing.shared_secret`, that secret (nothing written).
struct BenchKeys {
    algorithm: Algorithm,
    signers: HashMap<String, raw::Signer>,
    store: Keystore,
    created: Vec<String>,
}

impl BenchKeys {
    /// Keys for every name in `names`; waits until a running daemon has loaded them.
    async fn create(
        ctx: &Ctx,
        algorithm: Algorithm,
        names: &[String],
    ) -> anyhow::Result<BenchKeys> {
        let mut keys = BenchKeys {
            algorithm,
            signers: HashMap::new(),
            store: Keystore::new(ctx.config.keys_dir(&ctx.paths)),
            created: Vec::new(),
        };
        let signing = &ctx.config.signing;
        if !signing.shared_secret.is_empty() {
            anyhow::ensure!(
                algorithm == Algorithm::HmacSha256,
                "the daemon verifies every agent with signing.shared_secret (hmac-sha256); \
                 run with --sign hmac-sha256"
            );
            let key = SharedSecret::new(&signing.shared_secret).signing_key();
            for name in names {
                keys.signers
                    .insert(name.clone(), raw::Signer::new(name, key.clone()));
            }
            return Ok(keys);
        }
        if !signing.enabled {
            eprintln!(
                "note: signing is off in the configuration; unless the daemon was started with \
                 -c signing.enabled=true it does not check the signatures"
            );
        }
        let now = now_ms();
        for name in names {
            // On failure the keys made so far are removed by `Drop`.
            let file = keys.store.create(name, algorithm, now)?;
            keys.created.push(name.clone());
            keys.signers
                .insert(name.clone(), raw::Signer::new(name, file.signing_key(now)?));
        }
        tokio::time::sleep(KEY_LOAD_WAIT).await;
        Ok(keys)
    }

    fn signer(&self, name: &str) -> Option<raw::Signer> {
        self.signers.get(name).cloned()
    }
}

impl Drop for BenchKeys {
    fn drop(&mut self) {
        for name in &self.created {
            if let Ok(path) = self.store.path_for(name) {
                if let Err(e) = std::fs::remove_file(&path) {
                    eprintln!(
                        "agent-relay: cannot remove the benchmark key {}: {e}",
                        path.display()
                    );
                }
            }
        }
    }
}

/// Keys for `names` when `--sign` was given.
async fn bench_keys(
    ctx: &Ctx,
    sign: Option<crate::cli::SignArg>,
    names: &[String],
) -> anyhow::Result<Option<BenchKeys>> {
    match sign {
        Some(a) => Ok(Some(BenchKeys::create(ctx, a.into(), names).await?)),
        None => Ok(None),
    }
}

/// `--sign` as printed: the algorithm, or `off`.
fn signed_with(keys: Option<&BenchKeys>) -> &'static str {
    keys.map_or("off", |k| k.algorithm.as_str())
}

/// CPU time per message over a benchmark's measured window: the daemon's (all its threads; read
/// once its storage queue has drained, so the writes the window caused are counted) and this
/// process's (the benchmark's clients). Less noisy than messages per second on shared cores.
pub(crate) struct CpuProbe {
    client: relay_client::Client,
    daemon_start: DaemonCpu,
    own_start: Duration,
}

/// What [`CpuProbe::finish`] measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuUse {
    /// All the daemon's threads.
    pub daemon: Duration,
    /// The daemon's storage writer thread (included in `daemon`), when it reports it.
    pub storage: Option<Duration>,
    pub client: Duration,
}

/// [`CpuUse`] divided by the messages of the run, in µs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuPerMessage {
    pub daemon: f64,
    pub storage: Option<f64>,
    pub client: f64,
}

impl CpuPerMessage {
    /// Daemon and benchmark clients together.
    pub fn total(&self) -> f64 {
        self.daemon + self.client
    }
}

impl CpuUse {
    pub fn per_message_us(self, messages: u64) -> CpuPerMessage {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / messages.max(1) as f64;
        CpuPerMessage {
            daemon: per(self.daemon),
            storage: self.storage.map(per),
            client: per(self.client),
        }
    }
}

/// How long [`CpuProbe::finish`] waits for the daemon's storage queue to drain.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);

impl CpuProbe {
    /// Connects as `name` and reads both clocks; `None` (nothing reported) when the daemon does
    /// not report its CPU time (`cpuTimeUs` in STATUS).
    pub async fn start(ctx: &Ctx, name: &str) -> Option<CpuProbe> {
        let own_start = relay_daemon::cpu_time()?;
        let mut config = ctx.client_config(name);
        config.request_timeout = Duration::from_secs(5);
        let (client, _events) = relay_client::Client::connect(config).await.ok()?;
        let Some(daemon_start) = daemon_cpu(&client).await else {
            client.close().await;
            return None;
        };
        Some(CpuProbe {
            client,
            daemon_start,
            own_start,
        })
    }

    /// `own_end` is this process's CPU time at the end of the window; the daemon's is read once
    /// its storage queue is empty (or after [`DRAIN_DEADLINE`]: then `None`).
    pub async fn finish(self, own_end: Option<Duration>) -> Option<CpuUse> {
        let deadline = Instant::now() + DRAIN_DEADLINE;
        let daemon_end = loop {
            match daemon_cpu(&self.client).await {
                Some(cpu) if cpu.queue_depth == 0 => break Some(cpu),
                Some(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                _ => break None,
            }
        };
        self.client.close().await;
        let daemon_end = daemon_end?;
        let start = self.daemon_start;
        Some(CpuUse {
            daemon: daemon_end.all.saturating_sub(start.all),
            storage: start
                .storage
                .zip(daemon_end.storage)
                .map(|(a, b)| b.saturating_sub(a)),
            client: own_end?.saturating_sub(self.own_start),
        })
    }
}

/// The daemon's CPU clocks and storage queue depth, from STATUS.
#[derive(Debug, Clone, Copy)]
struct DaemonCpu {
    /// All threads (`cpuTimeUs`).
    all: Duration,
    /// The storage writer thread (`storeCpuTimeUs`; older daemons do not report it).
    storage: Option<Duration>,
    queue_depth: u64,
}

async fn daemon_cpu(client: &relay_client::Client) -> Option<DaemonCpu> {
    let status = client.status().await.ok()?;
    let micros = |key: &str| status.extra.get(key).and_then(Value::as_u64);
    Some(DaemonCpu {
        all: Duration::from_micros(micros("cpuTimeUs")?),
        storage: micros("storeCpuTimeUs").map(Duration::from_micros),
        queue_depth: micros("storeQueueDepth")?,
    })
}

/// Removes this run's agents from the daemon's registry (best effort).
async fn forget_agents(ctx: &Ctx, names: &[String]) {
    let Some((keep, rest)) = names.split_first() else {
        return;
    };
    let mut config = ctx.client_config(keep);
    config.request_timeout = Duration::from_secs(2);
    let Ok((client, _events)) = relay_client::Client::connect(config).await else {
        return;
    };
    for name in rest {
        // A daemon that keeps an agent is not a benchmark failure.
        let _ = client.remove_agent(name, true).await;
    }
    client.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_their_tag() {
        let b = make_body("3:17", 100);
        assert_eq!(b.len(), 100);
        assert_eq!(parse_tag::<2>(&b), Some([3, 17]));
        assert_eq!(parse_tag::<3>(&b), None);
        assert_eq!(make_body("123456:7", 4), "123456:7:");
        assert_eq!(run_suffix().len(), 6);
    }
}
