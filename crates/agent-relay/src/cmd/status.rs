//! `agent-relay status`.

use std::process::ExitCode;

use relay_protocol::StorageStatus;
use serde_json::json;

use crate::context::{Ctx, NotRunning};
use crate::output::{format_bytes, format_duration_ms, print_json};

pub async fn run(ctx: &Ctx, json: bool) -> anyhow::Result<ExitCode> {
    let (client, _events) = match ctx.connect().await {
        Ok(c) => c,
        Err(e) => {
            if json && e.is::<NotRunning>() {
                print_json(&json!({
                    "running": false,
                    "project": ctx.paths.root,
                    "socket": ctx.socket,
                }))?;
            }
            return Err(e);
        }
    };
    let status = client.status().await?;
    let connected = client.list_connected_agents().await?;
    // Metrics are a summary extra; an older daemon without them still gets a status.
    let metrics = client.metrics().await.ok();
    client.close().await;

    let me = client.agent_name();
    let mut online: Vec<String> = connected
        .agents
        .into_iter()
        .map(|a| a.name)
        .filter(|n| n != me)
        .collect();
    online.sort();
    let pid = ctx.pid_from(Some(&status));
    let rss = metrics.as_ref().map(|m| m.system.heap_used);

    let compaction = status.extra.get("compaction").cloned();
    if json {
        let mut out = json!({
            "running": true,
            "project": ctx.paths.root,
            "socket": ctx.socket,
            "version": status.version,
            "pid": pid,
            "uptimeMs": status.uptime,
            "storage": status.storage,
            "agentsOnline": online.len(),
            "agents": online,
            "daemonRssBytes": rss,
        });
        if let (Some(c), Some(map)) = (compaction, out.as_object_mut()) {
            map.insert("compaction".into(), c);
        }
        print_json(&out)?;
        return Ok(ExitCode::SUCCESS);
    }

    let dash = || "-".to_string();
    println!("agent-relay daemon running");
    println!("  project  {}", ctx.paths.root.display());
    println!("  socket   {}", ctx.socket.display());
    println!("  version  {}", status.version.clone().unwrap_or_else(dash));
    println!(
        "  pid      {}",
        pid.map(|p| p.to_string()).unwrap_or_else(dash)
    );
    println!(
        "  uptime   {}",
        status.uptime.map(format_duration_ms).unwrap_or_else(dash)
    );
    println!(
        "  storage  {}",
        status
            .storage
            .as_ref()
            .map(describe_storage)
            .unwrap_or_else(dash)
    );
    if online.is_empty() {
        println!("  agents   none online");
    } else {
        println!("  agents   {} online: {}", online.len(), online.join(", "));
    }
    println!(
        "  memory   {}",
        rss.map(|b| format!("{} (daemon RSS)", format_bytes(b)))
            .unwrap_or_else(dash)
    );
    if let Some(c) = compaction {
        let n = |k: &str| c["counters"][k].as_u64().unwrap_or(0);
        println!(
            "  context  compaction on: {} histories, {} compactions, {} contexts delivered ({} held for sync waits), {} events dropped",
            c["histories"].as_u64().unwrap_or(0),
            n("compactions"),
            n("injections"),
            n("deferredForSync"),
            n("droppedEvents")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn describe_storage(s: &StorageStatus) -> String {
    let mut parts = vec![if s.persistent {
        "persistent".to_string()
    } else {
        "in memory".to_string()
    }];
    parts.push(
        if s.can_write {
            "writable"
        } else {
            "NOT WRITABLE"
        }
        .into(),
    );
    if !s.can_read {
        parts.push("NOT READABLE".into());
    }
    if let Some(e) = &s.error {
        parts.push(format!("error: {e}"));
    }
    format!("{} ({})", s.driver, parts.join(", "))
}
