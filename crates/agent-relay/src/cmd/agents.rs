//! `agent-relay agents` and `agent-relay who`.

use std::collections::HashSet;
use std::process::ExitCode;

use relay_protocol::{now_ms, AgentInfo};
use serde_json::json;

use crate::cli::AgentsArgs;
use crate::context::Ctx;
use crate::output::{ago, print_json, table};

/// Names of short-lived connections made by this CLI and by `agent-relay bench`.
fn is_transient(name: &str) -> bool {
    let cli_pid = name
        .strip_prefix("cli-")
        .map(|rest| rest.strip_prefix("probe-").unwrap_or(rest))
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()));
    cli_pid || name.starts_with("bench-")
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|x| x.to_string())
        .unwrap_or_else(|| "-".into())
}

/// `agent-relay agents --profiles`: the project's agent profiles (`.claude/agents/*.md`).
fn profiles(ctx: &Ctx, json: bool) -> anyhow::Result<ExitCode> {
    let registry = relay_agents::ProfileRegistry::discover(&ctx.paths.root);
    for w in registry.warnings() {
        eprintln!("agent-relay: warning: {w}");
    }
    if json {
        let list: Vec<_> = registry
            .profiles()
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "path": p.path,
                    "description": p.description,
                    "model": p.model,
                    "role": p.role,
                    "tools": p.tools,
                })
            })
            .collect();
        print_json(&json!({ "profiles": list }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if registry.profiles().is_empty() {
        println!(
            "no agent profiles in {}",
            ctx.paths.root.join(".claude/agents").display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = registry
        .profiles()
        .iter()
        .map(|p| {
            let mut description = p.description.clone().unwrap_or_else(|| "-".into());
            if description.chars().count() > 60 {
                description = description.chars().take(59).collect::<String>() + "…";
            }
            vec![
                p.name.clone(),
                p.model.clone().unwrap_or_else(|| "-".into()),
                p.role.clone().unwrap_or_else(|| "-".into()),
                description,
            ]
        })
        .collect();
    println!(
        "{}",
        table(&["NAME", "MODEL", "ROLE", "DESCRIPTION"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn agents(ctx: &Ctx, args: &AgentsArgs) -> anyhow::Result<ExitCode> {
    if args.profiles {
        return profiles(ctx, args.json);
    }
    let (client, _events) = ctx.connect().await?;
    let known = client.list_agents().await?;
    let connected = client.list_connected_agents().await?;
    client.close().await;
    let me = client.agent_name().to_string();

    let online: HashSet<String> = connected.agents.into_iter().map(|a| a.name).collect();
    let mut agents: Vec<AgentInfo> = known
        .agents
        .into_iter()
        .filter(|a| a.name != me && (args.all || !is_transient(&a.name)))
        .map(|mut a| {
            a.online = Some(a.online.unwrap_or(false) || online.contains(&a.name));
            a
        })
        .collect();
    agents.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.name.cmp(&b.name)));

    if args.json {
        print_json(&json!({ "agents": agents }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if agents.is_empty() {
        println!("no agents known yet");
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_ms();
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            let is_online = a.online == Some(true);
            let status = match a.status.as_deref() {
                Some(s @ ("starting" | "running" | "stopping")) => s.to_string(),
                _ if is_online => "online".into(),
                _ => "offline".into(),
            };
            vec![
                a.name.clone(),
                status,
                opt(&a.cli),
                opt(&a.pid),
                if is_online {
                    "now".into()
                } else {
                    a.last_seen
                        .map(|t| ago(t, now))
                        .unwrap_or_else(|| "-".into())
                },
                opt(&a.messages_sent),
                opt(&a.messages_received),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "NAME",
                "STATUS",
                "CLI",
                "PID",
                "LAST SEEN",
                "SENT",
                "RECEIVED"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn who(ctx: &Ctx, json: bool) -> anyhow::Result<ExitCode> {
    let (client, _events) = ctx.connect().await?;
    let connected = client.list_connected_agents().await?;
    client.close().await;
    let me = client.agent_name().to_string();
    let mut agents: Vec<AgentInfo> = connected
        .agents
        .into_iter()
        .filter(|a| a.name != me)
        .collect();
    agents.sort_by(|a, b| a.name.cmp(&b.name));

    if json {
        print_json(&json!({ "agents": agents }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if agents.is_empty() {
        println!("no agents connected");
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_ms();
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                opt(&a.cli),
                opt(&a.pid),
                a.connected_at
                    .map(|t| ago(t, now))
                    .unwrap_or_else(|| "-".into()),
                opt(&a.task),
            ]
        })
        .collect();
    println!(
        "{}",
        table(&["NAME", "CLI", "PID", "CONNECTED", "TASK"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_names() {
        assert!(is_transient("cli-1234"));
        assert!(is_transient("cli-probe-1234"));
        assert!(is_transient("bench-a-x1y2z3"));
        assert!(!is_transient("cli"));
        assert!(!is_transient("cli-reviewer"));
        assert!(!is_transient("Alice"));
    }
}
