//! `agent-relay keys`: the per-agent message signing keys in the project's key directory
//! (create, rotate, list, export, revoke). Works on the files directly; a running daemon
//! re-reads them every second.

use std::path::PathBuf;
use std::process::ExitCode;

use relay_protocol::now_ms;
use relay_signing::{Algorithm, KeyFile, KeySummary, Keystore, KeystoreError};
use serde_json::json;

use crate::cli::{KeysCreateArgs, KeysExportArgs, KeysRevokeArgs, KeysRotateArgs};
use crate::context::Ctx;
use crate::output::{field, format_duration_ms, format_ts, print_json, table};

/// The project's key store.
fn store(ctx: &Ctx) -> Keystore {
    Keystore::new(ctx.config.keys_dir(&ctx.paths))
}

/// `keys create`.
pub fn create(ctx: &Ctx, args: &KeysCreateArgs) -> anyhow::Result<ExitCode> {
    let algorithm = match args.algorithm {
        Some(a) => a.into(),
        None => configured_algorithm(ctx)?,
    };
    let store = store(ctx);
    let now = now_ms();
    let expires_at = args.expires_in.map(|ms| now.saturating_add(ms));
    let file = store
        .create_with_expiry(&args.name, algorithm, now, expires_at)
        .map_err(|e| keystore_error(&store, e))?;
    if args.json {
        print_json(&summary_json(&store, &file))?;
    } else {
        println!(
            "created {} key {} for {}{}",
            file.algorithm,
            file.key_id,
            file.agent,
            expiry(file.expires_at)
        );
        field("file", &path_of(&store, &file.agent));
    }
    notes(ctx);
    Ok(ExitCode::SUCCESS)
}

/// `keys rotate`.
pub fn rotate(ctx: &Ctx, args: &KeysRotateArgs) -> anyhow::Result<ExitCode> {
    let overlap = args.overlap.unwrap_or_else(|| {
        ctx.config
            .signing
            .rotation_overlap_hours
            .saturating_mul(3_600_000)
    });
    let store = store(ctx);
    let before = store
        .load(&args.name)
        .map_err(|e| keystore_error(&store, e))?;
    let file = store
        .rotate(&args.name, now_ms(), overlap)
        .map_err(|e| keystore_error(&store, e))?;
    let previous = file.retired.iter().find(|r| r.key_id == before.key_id);
    if args.json {
        let mut out = summary_json(&store, &file);
        if let Some(obj) = out.as_object_mut() {
            obj.insert("previousKeyId".into(), json!(before.key_id));
            obj.insert(
                "previousValidUntil".into(),
                json!(previous.map(|r| r.valid_until)),
            );
        }
        print_json(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "rotated the key of {}: new {} key {}{}",
        file.agent,
        file.algorithm,
        file.key_id,
        expiry(file.expires_at)
    );
    match previous {
        Some(r) => println!(
            "the previous key {} verifies until {} ({} overlap)",
            r.key_id,
            format_ts(r.valid_until),
            format_duration_ms(overlap)
        ),
        // A revoked key is not kept: it never verifies again.
        None => println!(
            "the previous key {} was revoked and does not verify",
            before.key_id
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// `keys list`.
pub fn list(ctx: &Ctx, json: bool) -> anyhow::Result<ExitCode> {
    let store = store(ctx);
    let entries = store.list().map_err(|e| keystore_error(&store, e))?;
    let mut keys: Vec<KeySummary> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for entry in entries {
        match entry {
            Ok(summary) => keys.push(summary),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if json {
        print_json(&json!({
            "dir": store.dir(),
            "keys": keys,
            "problems": problems,
        }))?;
    } else if keys.is_empty() && problems.is_empty() {
        println!(
            "no keys in {}; create one with 'agent-relay keys create NAME'",
            store.dir().display()
        );
    } else if !keys.is_empty() {
        let rows: Vec<Vec<String>> = keys
            .iter()
            .map(|k| {
                let algorithm = if k.can_sign {
                    k.algorithm.to_string()
                } else {
                    format!("{} (public only)", k.algorithm)
                };
                vec![
                    k.agent.clone(),
                    algorithm,
                    k.key_id.clone(),
                    format_ts(k.created_at),
                    k.expires_at.map_or_else(|| "never".into(), format_ts),
                    ids(&k.retired),
                    ids(&k.revoked),
                ]
            })
            .collect();
        println!(
            "{}",
            table(
                &[
                    "NAME",
                    "ALGORITHM",
                    "KEY ID",
                    "CREATED",
                    "EXPIRES",
                    "RETIRED",
                    "REVOKED"
                ],
                &rows
            )
        );
    }
    for p in &problems {
        eprintln!("agent-relay: {p}");
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `keys export`.
pub fn export(ctx: &Ctx, args: &KeysExportArgs) -> anyhow::Result<ExitCode> {
    let store = store(ctx);
    let export = store
        .export_public(&args.name)
        .map_err(|e| keystore_error(&store, e))?;
    if args.json {
        print_json(&export)?;
        return Ok(ExitCode::SUCCESS);
    }
    field("agent", &export.agent);
    field("algorithm", &export.algorithm.to_string());
    field("key id", &export.key_id);
    field("created", &format_ts(export.created_at));
    field(
        "expires",
        &export.expires_at.map_or_else(|| "never".into(), format_ts),
    );
    match &export.public {
        Some(public) => field("public key", public),
        None => field("public key", "none (hmac-sha256)"),
    }
    if !export.retired.is_empty() {
        let retired: Vec<String> = export
            .retired
            .iter()
            .map(|r| {
                let public = r
                    .public
                    .as_deref()
                    .map(|p| format!(", public key {p}"))
                    .unwrap_or_default();
                format!(
                    "{} (verifies until {}{public})",
                    r.key_id,
                    format_ts(r.valid_until)
                )
            })
            .collect();
        field("retired", &retired.join("; "));
    }
    if !export.revoked.is_empty() {
        field("revoked", &export.revoked.join(", "));
    }
    if let Some(note) = &export.note {
        println!();
        println!("{note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `keys revoke`.
pub fn revoke(ctx: &Ctx, args: &KeysRevokeArgs) -> anyhow::Result<ExitCode> {
    let store = store(ctx);
    let file = store
        .revoke(&args.name, &args.key_id)
        .map_err(|e| keystore_error(&store, e))?;
    let current = file.key_id == args.key_id;
    if args.json {
        let mut out = summary_json(&store, &file);
        if let Some(obj) = out.as_object_mut() {
            obj.insert("revokedKeyId".into(), json!(args.key_id));
        }
        print_json(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("revoked key {} of {}", args.key_id, file.agent);
    if current {
        println!(
            "it was the current key: {} cannot sign until you run 'agent-relay keys rotate {}'",
            file.agent, file.agent
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `signing.algorithm` of the configuration.
fn configured_algorithm(ctx: &Ctx) -> anyhow::Result<Algorithm> {
    let configured = &ctx.config.signing.algorithm;
    configured.parse::<Algorithm>().map_err(|_| {
        anyhow::anyhow!(
            "signing.algorithm = {configured:?} in the configuration is not hmac-sha256 or \
             ed25519; fix it in {} or pass --algorithm",
            ctx.paths.config_file.display()
        )
    })
}

/// A key file's listing line with its path, as JSON (never key material).
fn summary_json(store: &Keystore, file: &KeyFile) -> serde_json::Value {
    let mut out = json!(file.summary());
    if let Some(obj) = out.as_object_mut() {
        obj.insert("file".into(), json!(path_of(store, &file.agent)));
    }
    out
}

fn path_of(store: &Keystore, agent: &str) -> String {
    store
        .path_for(agent)
        .unwrap_or_else(|_| PathBuf::from(agent))
        .display()
        .to_string()
}

/// `, expires <time>` or nothing.
fn expiry(expires_at: Option<u64>) -> String {
    expires_at
        .map(|t| format!(", expires {}", format_ts(t)))
        .unwrap_or_default()
}

/// Key ids separated by commas, `-` when there are none.
fn ids(ids: &[String]) -> String {
    if ids.is_empty() {
        "-".into()
    } else {
        ids.join(", ")
    }
}

/// What the configuration means for the keys just made, on stderr.
fn notes(ctx: &Ctx) {
    let signing = &ctx.config.signing;
    if !signing.shared_secret.is_empty() {
        eprintln!(
            "note: signing.shared_secret is set, so the daemon verifies every agent with the \
             shared secret and does not use per-agent keys"
        );
    } else if !signing.enabled {
        eprintln!(
            "note: signing is off in this project's configuration; the daemon checks signatures \
             with [signing] enabled = true in {}",
            ctx.paths.config_file.display()
        );
    }
}

/// A key store error with the command that fixes it.
fn keystore_error(store: &Keystore, e: KeystoreError) -> anyhow::Error {
    match e {
        KeystoreError::NotFound { agent, .. } => anyhow::anyhow!(
            "{agent} has no key in {}; create one with 'agent-relay keys create {agent}'",
            store.dir().display()
        ),
        KeystoreError::AlreadyExists { agent, path } => anyhow::anyhow!(
            "{agent} already has a key ({}); replace it with 'agent-relay keys rotate {agent}'",
            path.display()
        ),
        KeystoreError::UnknownKey { agent, key_id } => anyhow::anyhow!(
            "{agent} has no key {key_id}; 'agent-relay keys list' shows its key ids"
        ),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_formats() {
        assert_eq!(ids(&[]), "-");
        assert_eq!(ids(&["a".into(), "b".into()]), "a, b");
        assert_eq!(expiry(None), "");
        assert!(expiry(Some(1_795_521_601_000)).starts_with(", expires 2026-"));
    }

    #[test]
    fn errors_name_the_fix() {
        let store = Keystore::new("/nowhere/keys");
        let e = keystore_error(
            &store,
            KeystoreError::NotFound {
                agent: "Alice".into(),
                path: "/nowhere/keys/Alice.key.json".into(),
            },
        );
        assert_eq!(
            e.to_string(),
            "Alice has no key in /nowhere/keys; create one with 'agent-relay keys create Alice'"
        );
        let e = keystore_error(
            &store,
            KeystoreError::UnknownKey {
                agent: "Alice".into(),
                key_id: "0123456789abcdef".into(),
            },
        );
        assert!(e.to_string().contains("keys list"), "{e}");
    }
}
