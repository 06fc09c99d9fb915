//! `agent-relay send`.

use std::process::ExitCode;
use std::time::Duration;

use relay_client::{Event, SendOptions};
use relay_protocol::ChannelMessagePayload;
use serde_json::{json, Value};

use crate::cli::SendArgs;
use crate::context::Ctx;
use crate::output::{print_json, short_id};

pub async fn run(ctx: &Ctx, args: SendArgs) -> anyhow::Result<ExitCode> {
    let name = args.from.clone().unwrap_or_else(Ctx::cli_name);
    let (client, mut events) = ctx.connect_as(ctx.client_config(&name)).await?;

    let mut opts = SendOptions::new(&args.to, &args.message).kind(args.kind.into());
    if let Some(thread) = &args.thread {
        opts = opts.thread(thread);
    }
    if let Some(data) = args.data.clone() {
        opts = opts.data(data);
    }

    if args.wait {
        let result = client
            .send_and_wait(opts, Duration::from_secs(args.timeout_secs))
            .await;
        client.close().await;
        let ack = result?;
        if args.json {
            print_json(&json!({ "to": args.to, "from": name, "reply": ack }))?;
        } else {
            match &ack.response_data {
                Some(Value::String(s)) => println!("{s}"),
                Some(v) => println!("{}", serde_json::to_string_pretty(v)?),
                None => println!("{} acknowledged (no response data)", args.to),
            }
        }
        return Ok(ExitCode::SUCCESS);
    }

    let id = if args.to.starts_with('#') {
        // Posted as CHANNEL_MESSAGE, not as a SEND to the channel: the members get the same
        // copy either way, but only a post's signature covers what they get, so only then can
        // they check it.
        client
            .channel_post(ChannelMessagePayload {
                channel: args.to.clone(),
                body: args.message.clone(),
                thread: args.thread.clone(),
                mentions: None,
                attachments: None,
                data: args.data.clone(),
            })
            .await?
    } else {
        client.send(opts).await?
    };
    // The daemon answers queries in order, after routing what came before: once STATUS is
    // answered, any NACK, BUSY or ERROR for the send has arrived.
    let barrier = client.status().await;
    client.close().await;
    barrier?;
    let mut problems = Vec::new();
    while let Ok(event) = events.try_recv() {
        match event {
            Event::Nack(n) if n.ack_id == id => problems.push(format!(
                "the daemon refused the message: {}",
                n.message
                    .or(n.reason)
                    .unwrap_or_else(|| "no reason given".into())
            )),
            Event::Busy(b) => problems.push(format!(
                "the daemon is busy (queue depth {}); retry in {} ms",
                b.queue_depth, b.retry_after_ms
            )),
            Event::ServerError(e) if e.reply_to.as_deref() == Some(id.as_str()) => {
                problems.push(format!("the daemon rejected the message: {}", e.message))
            }
            _ => {}
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("; "));
    }
    if args.json {
        print_json(&json!({ "id": id, "to": args.to, "from": name }))?;
    } else {
        println!("sent [{}] to {}", short_id(&id), args.to);
    }
    Ok(ExitCode::SUCCESS)
}
