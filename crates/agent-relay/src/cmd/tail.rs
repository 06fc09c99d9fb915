//! `agent-relay tail`.

use std::process::ExitCode;

use relay_client::Event;
use relay_protocol::{WatchEventPayload, WatchPayload};

use crate::cli::TailArgs;
use crate::context::Ctx;
use crate::output::{format_ts, message_line};

pub async fn run(ctx: &Ctx, args: TailArgs) -> anyhow::Result<ExitCode> {
    let mut config = ctx.client_config(&Ctx::cli_name());
    // A long-running observer rides out daemon restarts.
    config.reconnect = true;
    let (client, mut events) = ctx.connect_as(config).await?;
    client
        .watch(WatchPayload {
            messages: true,
            logs: args.logs,
            agent: args.agent.clone(),
        })
        .await?;
    let mut first_connect = true;
    // One listener for the whole run, so a Ctrl-C between two events is not missed.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = &mut ctrl_c => {
                client.close().await;
                return Ok(ExitCode::SUCCESS);
            }
        };
        let Some(event) = event else {
            anyhow::bail!("the connection to the daemon ended");
        };
        match event {
            Event::Watch(w) => print_watch(&w, args.json)?,
            Event::Connected { .. } if first_connect => first_connect = false,
            Event::Connected { .. } => eprintln!("agent-relay: reconnected"),
            Event::Disconnected { reason } => {
                eprintln!("agent-relay: connection lost ({reason}); reconnecting")
            }
            Event::Closed { reason } => anyhow::bail!("stopped: {reason}"),
            Event::ServerError(e) => eprintln!("agent-relay: the daemon reported: {}", e.message),
            _ => {}
        }
    }
}

fn print_watch(event: &WatchEventPayload, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(event)?);
        return Ok(());
    }
    match event {
        WatchEventPayload::Message(m) => println!("{}", message_line(m)),
        WatchEventPayload::Log {
            agent,
            data,
            timestamp,
        } => println!("{}  [{agent}] {}", format_ts(*timestamp), data.trim_end()),
    }
    Ok(())
}
