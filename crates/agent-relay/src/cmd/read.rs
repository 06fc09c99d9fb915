//! `agent-relay read`.

use std::process::ExitCode;

use relay_client::ClientError;
use relay_protocol::ErrorCode;

use crate::cli::ReadArgs;
use crate::context::Ctx;
use crate::output::{format_ts, print_json, target};

pub async fn run(ctx: &Ctx, args: &ReadArgs) -> anyhow::Result<ExitCode> {
    let (client, _events) = ctx.connect().await?;
    let result = client.message_get(&args.id).await;
    client.close().await;
    let answer = match result {
        Ok(a) => a,
        Err(ClientError::Server(e)) if e.code == ErrorCode::NotFound => {
            anyhow::bail!("{}", e.message)
        }
        Err(e) => return Err(e.into()),
    };
    let Some(m) = answer.message else {
        anyhow::bail!(
            "{}",
            answer
                .error
                .unwrap_or_else(|| format!("no message with id or prefix {:?}", args.id))
        );
    };
    if args.json {
        print_json(&m)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("id:      {}", m.id);
    println!("from:    {}", m.from);
    println!("to:      {}", target(&m));
    if let Some(orig) = &m.original_to {
        if *orig != m.to {
            println!("sent to: {orig}");
        }
    }
    println!("time:    {}", format_ts(m.timestamp));
    if let Some(t) = &m.thread {
        println!("thread:  {t}");
    }
    if let Some(s) = &m.status {
        println!("status:  {s}");
    }
    println!("kind:    {}", m.kind.as_deref().unwrap_or("message"));
    if let Some(topic) = &m.topic {
        println!("topic:   {topic}");
    }
    if let Some(data) = &m.data {
        if !data.is_empty() {
            println!("data:    {}", serde_json::to_string(data)?);
        }
    }
    println!();
    println!("{}", m.body);
    Ok(ExitCode::SUCCESS)
}
