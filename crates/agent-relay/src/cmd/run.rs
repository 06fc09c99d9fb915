//! `agent-relay run` (alias `create-agent`): an agent CLI in the terminal wrapper.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use relay_client::ClientSigning;
use relay_wrapper::{Mode, Wrapper, WrapperOptions};

use crate::cli::RunArgs;
use crate::context::Ctx;

const ADJECTIVES: &[&str] = &[
    "Amber", "Brave", "Calm", "Clever", "Eager", "Gentle", "Keen", "Lucky", "Quick", "Quiet",
    "Sharp", "Steady", "Swift", "Wise",
];
const NOUNS: &[&str] = &[
    "Badger", "Falcon", "Fox", "Heron", "Lynx", "Otter", "Owl", "Panda", "Raven", "Tiger",
    "Walrus", "Wolf",
];

pub fn run(ctx: &Ctx, args: RunArgs) -> anyhow::Result<ExitCode> {
    let name = args.name.clone().unwrap_or_else(|| {
        format!(
            "{}{}",
            ADJECTIVES[fastrand::usize(..ADJECTIVES.len())],
            NOUNS[fastrand::usize(..NOUNS.len())]
        )
    });
    relay_protocol::ids::validate_agent_name(&name)
        .map_err(|e| anyhow::anyhow!("invalid agent name {name:?}: {e}"))?;
    relay_config::ensure_relay_dir(&ctx.paths.relay_dir)
        .with_context(|| format!("cannot create {}", ctx.paths.relay_dir.display()))?;
    let logs_dir = ctx.paths.relay_dir.join("logs");
    std::fs::create_dir_all(&logs_dir)
        .with_context(|| format!("cannot create {}", logs_dir.display()))?;
    let wrapper_log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs_dir.join(format!("{name}.wrapper.log")))
        .ok();
    crate::init_logging_to(&ctx.config, wrapper_log);

    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("give the agent command after --, e.g. -- claude"))?;
    let mut agent_args = rest.to_vec();
    let mut model = None;
    if relay_agents::is_claude_cli(program) {
        let registry = relay_agents::ProfileRegistry::discover(&ctx.paths.root);
        if let Some(profile) = registry.find(&name) {
            agent_args = relay_agents::apply_claude_profile(&agent_args, profile);
            model = profile.model.clone();
        }
    }
    let mut opts = WrapperOptions::new(
        name.clone(),
        program.clone(),
        agent_args,
        ctx.socket.clone(),
        ctx.paths.relay_dir.clone(),
    );
    opts.mode = Mode::Interactive;
    opts.profile = args.profile.clone();
    opts.ready_max_wait = args.ready_timeout.map(Duration::from_secs);
    opts.inject.max_body_chars = args.max_body.max(80);
    opts.model = model;
    opts.signing = signing(ctx, &name)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let exit = rt.block_on(async {
        let wrapper = match Wrapper::start(opts).await {
            Ok(w) => w,
            Err(relay_wrapper::WrapperError::Client(relay_client::ClientError::NotRunning {
                ..
            })) => return Err(ctx.not_running().into()),
            Err(e) => return Err(anyhow::Error::new(e)),
        };
        let stop = wrapper.stopper();
        let pid = wrapper.pid;
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut hup), Ok(mut int), Ok(mut quit)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
                signal(SignalKind::interrupt()),
                signal(SignalKind::quit()),
            ) else {
                return;
            };
            // SIGINT and SIGQUIT are the agent's to handle (in raw mode they arrive as keys
            // anyway); SIGTERM and SIGHUP end the run and stop the agent's process group.
            loop {
                tokio::select! {
                    _ = term.recv() => break,
                    _ = hup.recv() => break,
                    _ = int.recv() => {
                        relay_wrapper::pty::signal_group(pid, rustix::process::Signal::INT)
                    }
                    _ = quit.recv() => {
                        relay_wrapper::pty::signal_group(pid, rustix::process::Signal::QUIT)
                    }
                }
            }
            stop.cancel();
        });
        Ok(wrapper.wait().await)
    })?;
    relay_wrapper::terminal::restore_terminal();
    // The stdin reader thread may be blocked in read(); leave without waiting for it.
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(ExitCode::from(
        u8::try_from(exit.code.clamp(0, 255)).unwrap_or(1),
    ))
}

/// How the wrapped agent signs: like any CLI connection, and with signing on and per-agent keys
/// a key is created for the agent when it has none, so it can send without a manual step.
fn signing(ctx: &Ctx, name: &str) -> anyhow::Result<Option<ClientSigning>> {
    let s = &ctx.config.signing;
    if s.enabled && s.shared_secret.is_empty() {
        let keys_dir = ctx.config.keys_dir(&ctx.paths);
        let store = relay_signing::Keystore::new(&keys_dir);
        if store.load(name).is_err() {
            let algorithm: relay_signing::Algorithm = s
                .algorithm
                .parse()
                .map_err(|e| anyhow::anyhow!("[signing] algorithm: {e}"))?;
            store
                .create(name, algorithm, relay_protocol::now_ms())
                .with_context(|| format!("cannot create {name}'s signing key"))?;
            // A running daemon reads new key files once a second: let it see this one before
            // the agent's first signed message.
            tracing::info!(agent = name, "created a signing key for the agent");
            std::thread::sleep(Duration::from_millis(1200));
        }
    }
    Ok(ctx.signing_for(name))
}
