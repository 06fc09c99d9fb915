//! `agent-relay history`.

use std::process::ExitCode;

use relay_protocol::{MessagesQueryPayload, SortOrder};
use serde_json::json;

use crate::cli::HistoryArgs;
use crate::context::Ctx;
use crate::output::{message_line, print_json};

pub async fn run(ctx: &Ctx, args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let (client, _events) = ctx.connect().await?;
    // The newest `limit` messages, printed oldest first.
    let query = MessagesQueryPayload {
        limit: Some(args.limit),
        since_ts: args.since,
        from: args.from,
        to: args.to,
        thread: args.thread,
        order: Some(SortOrder::Desc),
        include_channels: None,
    };
    let result = client.messages(query).await;
    client.close().await;
    let mut messages = result?.messages;
    messages.sort_by_key(|m| m.timestamp);

    if args.json {
        print_json(&json!({ "messages": messages }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if messages.is_empty() {
        eprintln!("no messages match");
    }
    for m in &messages {
        println!("{}", message_line(m));
    }
    Ok(ExitCode::SUCCESS)
}
