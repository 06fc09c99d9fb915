//! `bench signing`: what signing every message costs in throughput.
//!
//! One run of `bench throughput` says little about a difference of a few per cent: on shared
//! cores the same build varies by ±10 % from one run to the next, and the machine's speed drifts
//! over minutes. So each round starts two fresh daemons, one after the other, each in its own
//! temporary project (a fresh database, its own socket): one with signing off and one enforcing
//! signatures of the chosen algorithm. The benchmark's agents get keys of that algorithm and sign
//! every SEND. The order alternates between rounds so that drift falls on both sides alike. The
//! report gives both means, the change in throughput as the ratio of the means with a bootstrap
//! 95 % confidence interval (rounds resampled whole, so each keeps its two runs together), and
//! the CPU time signing adds per message (daemon and benchmark clients together, the steadier
//! figure).

use std::path::PathBuf;
use std::process::{Child, ExitCode};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use relay_config::Override;
use rustix::process::{kill_process, Pid, Signal};
use serde_json::{json, Value};

use super::throughput::{self, Outcome};
use super::{command_line_of, round2, CpuPerMessage};
use crate::cli::{GlobalArgs, SigningArgs, ThroughputArgs};
use crate::cmd::up::{daemon_command, log_tail, wait_until_answering, Started, START_DEADLINE};
use crate::context::Ctx;

/// How long a daemon may take to exit after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// Resamples of the bootstrap interval.
const RESAMPLES: usize = 2000;
/// Fixed so that the same runs always give the same interval.
const BOOTSTRAP_SEED: u64 = 0x5eed_5167;

pub async fn run(ctx: &Ctx, args: &SigningArgs) -> anyhow::Result<ExitCode> {
    let algorithm = relay_signing::Algorithm::from(args.sign).as_str();
    let mut unsigned = Vec::new();
    let mut signed = Vec::new();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    for round in 0..args.rounds {
        for signing in run_order(round) {
            let outcome = tokio::select! {
                outcome = one_run(ctx, args, signing) => outcome?,
                // Dropping the run stops its daemon (see `Daemon`'s Drop).
                _ = &mut interrupted => anyhow::bail!("interrupted; no summary"),
            };
            eprintln!(
                "round {}/{}: {:<11} {:>7.0} msgs/s{}{}",
                round + 1,
                args.rounds,
                if signing { algorithm } else { "unsigned" },
                outcome.rate(),
                outcome
                    .cpu_us
                    .map(|cpu| format!(", {:.2} µs CPU/message", cpu.total()))
                    .unwrap_or_default(),
                if outcome.clean() {
                    ""
                } else {
                    " (LOSSES OR DUPLICATES)"
                },
            );
            if signing {
                signed.push(outcome);
            } else {
                unsigned.push(outcome);
            }
        }
    }
    let report = Report::new(algorithm, &unsigned, &signed);
    let command = command_line(ctx, args);
    if args.json {
        let mut value = report.to_json();
        value["rounds"] = json!(args.rounds);
        value["pairs"] = json!(args.pairs);
        value["messages_per_pair"] = json!(args.messages);
        value["size"] = json!(args.size);
        value["window"] = json!(args.window);
        value["runs"] = json!({
            "unsigned": unsigned.iter().map(Outcome::to_json).collect::<Vec<_>>(),
            "signed": signed.iter().map(Outcome::to_json).collect::<Vec<_>>(),
        });
        value["command"] = json!(command);
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "bench signing: {algorithm} against unsigned, {} round{} of {} pairs x {} messages \
             ({}-byte bodies, window {}), a fresh daemon per run",
            args.rounds,
            if args.rounds == 1 { "" } else { "s" },
            args.pairs,
            args.messages,
            args.size,
            args.window
        );
        report.print_text();
        println!("command: {command}");
    }
    let clean = every_run_clean(&unsigned, &signed);
    if !clean {
        eprintln!("some runs lost or duplicated messages: see the runs above");
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Whether every run delivered every message exactly once: the command fails otherwise, since
/// a run that lost or duplicated messages measured something else.
fn every_run_clean(unsigned: &[Outcome], signed: &[Outcome]) -> bool {
    unsigned.iter().chain(signed).all(Outcome::clean)
}

/// Whether each run of round `round` signs: unsigned first in even rounds, signed first in odd.
fn run_order(round: u64) -> [bool; 2] {
    if round.is_multiple_of(2) {
        [false, true]
    } else {
        [true, false]
    }
}

/// One benchmark run against a daemon of its own in a temporary project.
async fn one_run(ctx: &Ctx, args: &SigningArgs, signing: bool) -> anyhow::Result<Outcome> {
    let project = tempfile::Builder::new()
        .prefix("agent-relay-bench-")
        .tempdir()
        .context("cannot create a temporary project for the benchmark")?;
    let run_ctx = Ctx::load(&run_globals(
        ctx,
        args,
        project.path().to_path_buf(),
        signing,
    ))?;
    let daemon = Daemon::start(&run_ctx).await?;
    let throughput_args = ThroughputArgs {
        pairs: args.pairs,
        messages: args.messages,
        size: args.size,
        window: args.window,
        sign: signing.then_some(args.sign),
        json: false,
    };
    let outcome = throughput::measure(&run_ctx, &throughput_args).await;
    let stopped = daemon.stop().await;
    // A failed run says why before a failed stop does.
    let outcome = outcome?;
    stopped?;
    Ok(outcome)
}

/// The global options of one run: the temporary project and a socket inside it (never the
/// socket of the project the command was started in), the caller's `-c` overrides, no rate
/// limit, and when `signing`, signatures enforced with the chosen algorithm.
fn run_globals(ctx: &Ctx, args: &SigningArgs, project: PathBuf, signing: bool) -> GlobalArgs {
    let mut config_set = ctx.global.config_set.clone();
    let mut set = |key: &str, value: &str| {
        config_set.push(Override {
            key: key.to_string(),
            value: value.to_string(),
        })
    };
    set("limits.rate_limit_enabled", "false");
    set("signing.enabled", if signing { "true" } else { "false" });
    if signing {
        set("signing.require_signatures", "enforce");
        set(
            "signing.algorithm",
            relay_signing::Algorithm::from(args.sign).as_str(),
        );
    }
    let socket = project.join(".agent-relay").join("relay.sock");
    GlobalArgs {
        project: Some(project),
        socket: Some(socket),
        config_set,
    }
}

/// The command line that repeats this comparison: the caller's `-c` overrides (the daemons it
/// starts get them), never a socket (each run has its own).
fn command_line(ctx: &Ctx, args: &SigningArgs) -> String {
    let mut program = String::from("agent-relay");
    for o in &ctx.global.config_set {
        program.push_str(&format!(" -c {}={}", o.key, o.value));
    }
    let params = [
        (
            "sign",
            relay_signing::Algorithm::from(args.sign)
                .as_str()
                .to_string(),
        ),
        ("rounds", args.rounds.to_string()),
        ("pairs", args.pairs.to_string()),
        ("messages", args.messages.to_string()),
        ("size", args.size.to_string()),
        ("window", args.window.to_string()),
    ];
    command_line_of(program, "signing", &params, args.json)
}

/// A daemon started for one run (`up --foreground` in a child process); stopped with SIGTERM by
/// [`Daemon::stop`], killed if it is dropped still running.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    async fn start(ctx: &Ctx) -> anyhow::Result<Daemon> {
        relay_config::ensure_relay_dir(&ctx.paths.relay_dir)
            .with_context(|| format!("cannot create {}", ctx.paths.relay_dir.display()))?;
        let log = ctx.paths.daemon_log.clone();
        let file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = daemon_command(ctx, file)?
            .spawn()
            .context("cannot start a daemon for the benchmark")?;
        let mut daemon = Daemon { child, log };
        match wait_until_answering(ctx, &mut daemon.child).await? {
            Started::Answering => Ok(daemon),
            Started::Exited(exit) => anyhow::bail!(
                "the benchmark's daemon exited during startup ({exit}): {}",
                daemon.log_tail()
            ),
            Started::Silent => anyhow::bail!(
                "the benchmark's daemon did not answer on {} within {} s: {}",
                ctx.socket.display(),
                START_DEADLINE.as_secs(),
                daemon.log_tail()
            ),
        }
    }

    /// SIGTERM, then waits for the exit (the daemon flushes its storage queue first).
    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw) {
            // Already gone is fine: the wait below reports how it ended.
            let _ = kill_process(pid, Signal::TERM);
        }
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            if let Some(exit) = self.child.try_wait()? {
                anyhow::ensure!(
                    exit.success(),
                    "the benchmark's daemon exited with {exit}: {}",
                    self.log_tail()
                );
                return Ok(());
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "the benchmark's daemon did not stop within {} s of SIGTERM (killed): {}",
                    STOP_DEADLINE.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The end of the daemon's log, for error messages (the log goes with the project).
    fn log_tail(&self) -> String {
        match log_tail(&self.log, 0) {
            Some(tail) => format!("the end of its log:\n{tail}"),
            None => "it wrote nothing to its log".to_string(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Messages per second and CPU per message of the runs of one kind.
struct Side {
    rates: Vec<f64>,
    /// µs per message; `None` unless every run reported it.
    cpu: Option<Vec<CpuPerMessage>>,
}

impl Side {
    fn of(runs: &[Outcome]) -> Side {
        Side {
            rates: runs.iter().map(Outcome::rate).collect(),
            cpu: runs.iter().map(|o| o.cpu_us).collect(),
        }
    }

    /// Mean µs per message of one part of the CPU time (`None` when a run lacks it).
    fn cpu_mean(&self, part: impl Fn(&CpuPerMessage) -> Option<f64>) -> Option<f64> {
        let values: Option<Vec<f64>> = self.cpu.as_ref()?.iter().map(part).collect();
        Some(mean(&values?))
    }

    fn total_cpu(&self) -> Option<f64> {
        self.cpu_mean(|c| Some(c.total()))
    }

    fn to_json(&self) -> Value {
        json!({
            "mean_messages_per_sec": mean(&self.rates).round(),
            "sd_messages_per_sec": sd(&self.rates).round(),
            "min_messages_per_sec": self.rates.iter().copied().fold(f64::INFINITY, f64::min).round(),
            "max_messages_per_sec": self.rates.iter().copied().fold(0.0, f64::max).round(),
            "cpu_us_per_message": self.total_cpu().map(|total| json!({
                "total": round2(total),
                "daemon": self.cpu_mean(|c| Some(c.daemon)).map(round2),
                "storage": self.cpu_mean(|c| c.storage).map(round2),
                "client": self.cpu_mean(|c| Some(c.client)).map(round2),
            })),
        })
    }
}

/// Unsigned against signed.
struct Report {
    algorithm: &'static str,
    unsigned: Side,
    signed: Side,
    /// Signed mean / unsigned mean − 1, in per cent.
    change_percent: f64,
    /// Bootstrap 95 % interval of `change_percent`.
    interval: (f64, f64),
}

impl Report {
    fn new(algorithm: &'static str, unsigned: &[Outcome], signed: &[Outcome]) -> Report {
        let unsigned = Side::of(unsigned);
        let signed = Side::of(signed);
        let change_percent = change_percent(&unsigned.rates, &signed.rates);
        let interval =
            bootstrap_interval(&unsigned.rates, &signed.rates, RESAMPLES, BOOTSTRAP_SEED);
        Report {
            algorithm,
            unsigned,
            signed,
            change_percent,
            interval,
        }
    }

    /// CPU per message signing adds to one part, when both sides reported it.
    fn extra_cpu_us(&self, part: impl Fn(&CpuPerMessage) -> Option<f64> + Copy) -> Option<f64> {
        Some(self.signed.cpu_mean(part)? - self.unsigned.cpu_mean(part)?)
    }

    /// What signing adds to each part of the CPU time: (JSON key, label, µs per message).
    fn extra_cpu_us_by_part(&self) -> [(&'static str, &'static str, Option<f64>); 3] {
        [
            (
                "daemon_except_storage",
                "daemon except storage",
                self.extra_cpu_us(|c| Some(c.daemon - c.storage?)),
            ),
            (
                "storage",
                "storage thread",
                self.extra_cpu_us(|c| c.storage),
            ),
            (
                "client",
                "bench clients",
                self.extra_cpu_us(|c| Some(c.client)),
            ),
        ]
    }

    fn to_json(&self) -> Value {
        json!({
            "bench": "signing",
            "algorithm": self.algorithm,
            "unsigned": self.unsigned.to_json(),
            "signed": self.signed.to_json(),
            "throughput_change_percent": round2(self.change_percent),
            "throughput_change_ci95_percent": [round2(self.interval.0), round2(self.interval.1)],
            "extra_cpu_us_per_message": self.extra_cpu_us(|c| Some(c.total())).map(round2),
            "extra_cpu_us_per_message_by_part": self
                .extra_cpu_us_by_part()
                .into_iter()
                .map(|(key, _, extra)| (key.to_string(), json!(extra.map(round2))))
                .collect::<serde_json::Map<_, _>>(),
        })
    }

    fn print_text(&self) {
        for (label, side) in [("unsigned", &self.unsigned), (self.algorithm, &self.signed)] {
            let cpu = side
                .total_cpu()
                .map(|c| format!(", {c:.2} µs CPU/message"))
                .unwrap_or_default();
            println!(
                "  {label:<12} mean {:>7.0} msgs/s (sd {:.0}, {} runs){cpu}",
                mean(&side.rates),
                sd(&side.rates),
                side.rates.len()
            );
        }
        let cpu = self
            .extra_cpu_us(|c| Some(c.total()))
            .map(|c| format!(", {c:+.2} µs CPU/message"))
            .unwrap_or_default();
        println!(
            "  cost         {:+.1} % of throughput (95 % interval {:+.1} to {:+.1} %){cpu}",
            self.change_percent, self.interval.0, self.interval.1
        );
        let parts = self.extra_cpu_us_by_part();
        if parts.iter().all(|(_, _, v)| v.is_some()) {
            let parts: Vec<String> = parts
                .iter()
                .map(|(_, label, v)| format!("{label} {:+.2}", v.unwrap_or_default()))
                .collect();
            println!("  extra CPU    {} µs/message", parts.join(", "));
        }
    }
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample standard deviation (0 for fewer than two values).
fn sd(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

/// `mean(signed) / mean(unsigned) − 1` in per cent.
fn change_percent(unsigned: &[f64], signed: &[f64]) -> f64 {
    100.0 * (mean(signed) / mean(unsigned) - 1.0)
}

/// Percentile bootstrap over rounds: `unsigned[i]` and `signed[i]` are round `i`'s two runs, made
/// minutes apart at most, so a round is resampled whole (with replacement, `resamples` times) and
/// the machine's drift, which moves both runs of a round alike, stays paired as it was measured.
/// Returns the 2.5th and 97.5th percentiles of [`change_percent`]; NaN without rounds or when
/// the sides do not pair up.
fn bootstrap_interval(unsigned: &[f64], signed: &[f64], resamples: usize, seed: u64) -> (f64, f64) {
    let rounds = unsigned.len();
    if rounds == 0 || signed.len() != rounds || resamples == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut changes: Vec<f64> = (0..resamples)
        .map(|_| {
            let picked: Vec<usize> = (0..rounds).map(|_| rng.usize(..rounds)).collect();
            let u: Vec<f64> = picked.iter().map(|&i| unsigned[i]).collect();
            let s: Vec<f64> = picked.iter().map(|&i| signed[i]).collect();
            change_percent(&u, &s)
        })
        .collect();
    changes.sort_by(f64::total_cmp);
    let at = |q: f64| changes[((q * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    (at(0.025), at(0.975))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_run_with_a_loss_or_a_duplicate_fails_the_command() {
        let clean = || Outcome::counted(100, 100, 0);
        assert!(every_run_clean(&[clean(), clean()], &[clean(), clean()]));
        let lost_one = Outcome::counted(100, 99, 0);
        assert_eq!(lost_one.losses(), 1);
        assert!(!every_run_clean(&[clean()], &[clean(), lost_one]));
        let duplicated_one = Outcome::counted(100, 100, 1);
        assert!(!every_run_clean(&[duplicated_one], &[clean()]));
    }

    #[test]
    fn rounds_alternate_which_side_runs_first() {
        assert_eq!(run_order(0), [false, true]);
        assert_eq!(run_order(1), [true, false]);
        assert_eq!(run_order(2), [false, true]);
    }

    #[test]
    fn the_change_is_the_ratio_of_the_means() {
        let unsigned = [90.0, 110.0];
        let signed = [80.0, 100.0];
        assert!((change_percent(&unsigned, &signed) + 10.0).abs() < 1e-9);
        assert!((sd(&unsigned) - 14.142_135_623).abs() < 1e-6);
        assert_eq!(sd(&[5.0]), 0.0);
    }

    #[test]
    fn the_interval_holds_the_estimate_and_narrows_with_less_spread() {
        let unsigned = [80.0, 85.0, 90.0, 95.0, 100.0, 88.0, 92.0, 84.0];
        let signed = [70.0, 76.0, 80.0, 86.0, 90.0, 78.0, 83.0, 74.0];
        let estimate = change_percent(&unsigned, &signed);
        let (lo, hi) = bootstrap_interval(&unsigned, &signed, 2000, 1);
        assert!(lo < estimate && estimate < hi, "{lo} < {estimate} < {hi}");
        // Same seed, same interval.
        assert_eq!(bootstrap_interval(&unsigned, &signed, 2000, 1), (lo, hi));
        // Without spread there is nothing to be unsure about.
        let (lo, hi) = bootstrap_interval(&[100.0; 5], &[90.0; 5], 500, 1);
        assert!(
            (lo + 10.0).abs() < 1e-9 && (hi + 10.0).abs() < 1e-9,
            "{lo} {hi}"
        );
        assert!(bootstrap_interval(&[], &signed, 10, 1).0.is_nan());
        assert!(bootstrap_interval(&unsigned, &signed[1..], 10, 1)
            .0
            .is_nan());
    }

    #[test]
    fn drift_shared_by_a_rounds_two_runs_does_not_widen_the_interval() {
        // The machine's speed swings from round to round by ±25 %, and signing costs exactly
        // 10 % in every round: resampling rounds whole keeps the two runs of a round together,
        // so the interval is the 10 % itself.
        let unsigned = [80.0, 120.0, 95.0, 110.0, 70.0, 125.0, 90.0, 100.0];
        let signed: Vec<f64> = unsigned.iter().map(|u| u * 0.9).collect();
        let (lo, hi) = bootstrap_interval(&unsigned, &signed, 2000, 7);
        assert!(
            (lo + 10.0).abs() < 1e-9 && (hi + 10.0).abs() < 1e-9,
            "{lo} {hi}"
        );
        // Had the runs been resampled side by side, unpaired, the drift alone would make the
        // interval several points wide.
        let mut rng = fastrand::Rng::with_seed(7);
        let mut unpaired: Vec<f64> = (0..2000)
            .map(|_| {
                let u: Vec<f64> = (0..8).map(|_| unsigned[rng.usize(..8)]).collect();
                let s: Vec<f64> = (0..8).map(|_| signed[rng.usize(..8)]).collect();
                change_percent(&u, &s)
            })
            .collect();
        unpaired.sort_by(f64::total_cmp);
        assert!(unpaired[1949] - unpaired[50] > 10.0, "{unpaired:?}");
    }

    #[test]
    fn runs_never_use_the_callers_socket_and_sign_only_when_asked() {
        let global = GlobalArgs {
            project: None,
            socket: Some(PathBuf::from("/elsewhere/relay.sock")),
            config_set: vec!["log.level=warn".parse().unwrap()],
        };
        let dir = tempfile::tempdir().unwrap();
        let ctx = Ctx::load(&GlobalArgs {
            project: Some(dir.path().to_path_buf()),
            ..global
        })
        .unwrap();
        let args = SigningArgs {
            sign: crate::cli::SignArg::Ed25519,
            rounds: 1,
            pairs: 1,
            messages: 1,
            size: 100,
            window: 1,
            json: false,
        };
        let project = dir.path().join("run");
        let signed = run_globals(&ctx, &args, project.clone(), true);
        assert_eq!(
            signed.socket.as_deref(),
            Some(project.join(".agent-relay/relay.sock").as_path())
        );
        let set: Vec<String> = signed
            .config_set
            .iter()
            .map(|o| format!("{}={}", o.key, o.value))
            .collect();
        for expected in [
            "log.level=warn",
            "limits.rate_limit_enabled=false",
            "signing.enabled=true",
            "signing.require_signatures=enforce",
            "signing.algorithm=ed25519",
        ] {
            assert!(set.iter().any(|s| s == expected), "{expected} in {set:?}");
        }
        let unsigned = run_globals(&ctx, &args, project, false);
        assert!(unsigned
            .config_set
            .iter()
            .any(|o| o.key == "signing.enabled" && o.value == "false"));
        assert!(!unsigned
            .config_set
            .iter()
            .any(|o| o.key == "signing.require_signatures"));
    }
}
