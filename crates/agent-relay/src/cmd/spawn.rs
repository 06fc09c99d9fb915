//! `agent-relay spawn` and `agent-relay release`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context as _;
use relay_protocol::{ReleasePayload, SpawnPayload};
use serde_json::json;

use crate::cli::{ReleaseArgs, SpawnArgs};
use crate::context::Ctx;
use crate::output::print_json;

pub async fn spawn(ctx: &Ctx, args: SpawnArgs) -> anyhow::Result<ExitCode> {
    let task = match args.task.as_deref() {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read the task from stdin")?;
            s.trim().to_string()
        }
        Some(t) => t.to_string(),
        None => String::new(),
    };
    let (client, _events) = ctx.connect_maybe_as(args.as_name.as_deref()).await?;
    let payload = SpawnPayload {
        name: args.name.clone(),
        cli: args.cli.clone(),
        task,
        cwd: args.cwd.clone(),
        model: args.model.clone(),
        ..SpawnPayload::default()
    };
    let result = client.spawn(payload).await;
    client.close().await;
    let result = result?;
    let pid = result.pid.map_or("-".into(), |p| p.to_string());
    report(
        args.json,
        &json!(result),
        result.success,
        &format!("spawned {} (pid {pid})", result.name),
        &format!("cannot spawn {}", result.name),
        result.error.as_deref(),
    )
}

pub async fn release(ctx: &Ctx, args: &ReleaseArgs) -> anyhow::Result<ExitCode> {
    let (client, _events) = ctx.connect_maybe_as(args.as_name.as_deref()).await?;
    let result = client
        .release(ReleasePayload {
            name: args.name.clone(),
            reason: Some("released with agent-relay release".into()),
        })
        .await;
    client.close().await;
    let result = result?;
    report(
        args.json,
        &json!(result),
        result.success,
        &format!("released {}", result.name),
        &format!("cannot release {}", result.name),
        result.error.as_deref(),
    )
}

/// Prints a SPAWN/RELEASE answer (JSON, or a line on stdout / an error on stderr) and turns it
/// into the exit code.
fn report(
    json: bool,
    value: &serde_json::Value,
    success: bool,
    done: &str,
    failed: &str,
    error: Option<&str>,
) -> anyhow::Result<ExitCode> {
    if json {
        print_json(value)?;
    } else if success {
        println!("{done}");
    } else {
        eprintln!("agent-relay: {failed}: {}", error.unwrap_or("refused"));
    }
    Ok(if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
