//! `relay.toml` < `AGENT_RELAY_<SECTION>_<KEY>` < flags.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::schema::RelayConfig;

/// A configuration error, naming the key, the source and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration ({origin}): {message}")]
    Invalid { origin: String, message: String },
}

/// A `section.key=value` override from the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub key: String,
    pub value: String,
}

impl std::str::FromStr for Override {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("expected section.key=value, got {s:?}"))?;
        if !key.contains('.') {
            return Err(format!("expected section.key=value, got {s:?}"));
        }
        Ok(Override {
            key: key.trim().to_string(),
            value: value.trim().to_string(),
        })
    }
}

/// Loads the configuration for a project: `config_file` (if it exists), then the process
/// environment, then `overrides`. The result is validated.
pub fn load(config_file: &Path, overrides: &[Override]) -> Result<RelayConfig, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    load_from(config_file, &env, overrides)
}

/// [`load`] with an explicit environment (for tests).
pub fn load_from(
    config_file: &Path,
    env: &[(String, String)],
    overrides: &[Override],
) -> Result<RelayConfig, ConfigError> {
    let defaults = Value::try_from(RelayConfig::default()).map_err(|e| ConfigError::Invalid {
        origin: "defaults".into(),
        message: e.to_string(),
    })?;
    let Value::Table(mut merged) = defaults else {
        unreachable_table()
    };
    let schema = merged.clone();

    apply_legacy_signing(&mut merged, env)?;

    if config_file.exists() {
        let text = std::fs::read_to_string(config_file).map_err(|source| ConfigError::Read {
            path: config_file.to_path_buf(),
            source,
        })?;
        let file: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: config_file.to_path_buf(),
                message: e.to_string(),
            })?;
        let origin = config_file.display().to_string();
        for (section, body) in file {
            let Some(Value::Table(known)) = schema.get(&section) else {
                return Err(invalid(
                    &origin,
                    format!(
                        "unknown section [{section}]; known sections: {}",
                        names(&schema)
                    ),
                ));
            };
            let Value::Table(body) = body else {
                return Err(invalid(&origin, format!("{section} must be a [section]")));
            };
            merge_table(&mut merged, &origin, &[section.as_str()], known, body)?;
        }
    }

    let mut keys = Vec::new();
    leaf_keys(&schema, &mut Vec::new(), &mut keys);
    for (path, default) in keys {
        let var = format!("AGENT_RELAY_{}", path.join("_").to_uppercase());
        if let Some((_, raw)) = env.iter().find(|(k, _)| *k == var) {
            let value = parse_like(default, raw)
                .map_err(|m| invalid(&format!("environment variable {var}"), m))?;
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            set_path(&mut merged, &path, value);
        }
    }
    apply_compat_env(&mut merged, env)?;

    for o in overrides {
        let origin = format!("override {}={}", o.key, o.value);
        let path: Vec<&str> = o.key.split('.').collect();
        let default = match lookup(&schema, &path) {
            Some(Value::Table(t)) if path.len() > 1 => {
                return Err(invalid(
                    &origin,
                    format!(
                        "{} is a table; set one of its keys, e.g. {}.{}",
                        o.key,
                        o.key,
                        t.keys().next().map(String::as_str).unwrap_or("key")
                    ),
                ))
            }
            Some(v) if path.len() > 1 => v,
            _ => return Err(invalid(&origin, format!("unknown key {}", o.key))),
        };
        let value = parse_like(default, &o.value).map_err(|m| invalid(&origin, m))?;
        set_path(&mut merged, &path, value);
    }

    let config: RelayConfig = Value::Table(merged)
        .try_into()
        .map_err(|e: toml::de::Error| invalid("merged configuration", e.to_string()))?;
    config
        .validate()
        .map_err(|m| invalid("merged configuration", m))?;
    Ok(config)
}

/// Where the original agent-relay looked for its signing configuration, first found wins. It is
/// the lowest layer: `[signing]` in relay.toml, the environment and flags override it.
fn legacy_signing_paths(env: &[(String, String)]) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some((_, home)) = env.iter().find(|(k, _)| k == "HOME") {
        paths.push(Path::new(home).join(".agent-relay/signing.json"));
        paths.push(Path::new(home).join(".config/agent-relay/signing.json"));
    }
    paths.push(PathBuf::from("/etc/agent-relay/signing.json"));
    paths
}

fn apply_legacy_signing(merged: &mut Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    let Some(path) = legacy_signing_paths(env).into_iter().find(|p| p.is_file()) else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.clone(),
        message: format!("not valid JSON: {e}"),
    })?;
    let origin = path.display().to_string();
    let mut put = |key: &str, value: Value| set(merged, "signing", key, value);
    for (field, value) in json.as_object().into_iter().flatten() {
        match (field.as_str(), value) {
            ("enabled", serde_json::Value::Bool(b)) => put("enabled", Value::Boolean(*b)),
            ("algorithm", serde_json::Value::String(a)) => put("algorithm", Value::String(a.clone())),
            ("requireSignatures", serde_json::Value::Bool(b)) => {
                put("require_signatures", Value::String(if *b { "enforce" } else { "off" }.into()))
            }
            ("requireSignatures", serde_json::Value::String(m)) => put("require_signatures", Value::String(m.clone())),
            ("allowUnsignedFrom", serde_json::Value::Array(names)) => put(
                "allow_unsigned_from",
                Value::Array(names.iter().filter_map(|n| n.as_str()).map(|n| Value::String(n.into())).collect()),
            ),
            ("sharedSecret", serde_json::Value::String(s)) => put("shared_secret", Value::String(s.clone())),
            ("keyDir", serde_json::Value::String(d)) => put("keys_dir", Value::String(d.clone())),
            ("keyRotationHours", serde_json::Value::Number(n)) => {
                put("key_rotation_hours", Value::Integer(n.as_i64().unwrap_or(0).max(0)))
            }
            (other, v) => {
                return Err(invalid(&origin, format!("unsupported signing.json field {other:?} = {v}; known: enabled, algorithm, requireSignatures, allowUnsignedFrom, sharedSecret, keyDir, keyRotationHours")))
            }
        }
    }
    Ok(())
}

/// Environment variables the original agent-relay read, kept working.
fn apply_compat_env(merged: &mut Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if let Some(socket) = get("AGENT_RELAY_SOCKET") {
        set(merged, "daemon", "socket", Value::String(socket));
    }
    if let Some(kind) = get("AGENT_RELAY_STORAGE_TYPE") {
        let backend = match kind.as_str() {
            "sqlite" | "sqlite-batched" | "batched" => "sqlite",
            "memory" | "none" => "memory",
            other => {
                return Err(invalid(
                    "environment variable AGENT_RELAY_STORAGE_TYPE",
                    format!("unsupported storage type {other:?}; use sqlite or memory"),
                ))
            }
        };
        set(merged, "store", "backend", Value::String(backend.into()));
    }
    if let Some(path) = get("AGENT_RELAY_STORAGE_PATH") {
        set(merged, "store", "path", Value::String(path));
    }
    Ok(())
}

fn parse_like(default: &Value, raw: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("expected {what}, got {raw:?}");
    Ok(match default {
        Value::String(_) => Value::String(raw.to_string()),
        Value::Integer(_) => Value::Integer(raw.parse().map_err(|_| bad("an integer"))?),
        Value::Float(_) => Value::Float(raw.parse().map_err(|_| bad("a number"))?),
        Value::Boolean(_) => Value::Boolean(match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => return Err(bad("true or false")),
        }),
        Value::Array(_) => {
            let wrapped = format!("v = {raw}");
            let t: Table = wrapped
                .parse()
                .map_err(|_| bad("a TOML array such as [1000, 1001]"))?;
            t.get("v").cloned().ok_or_else(|| bad("an array"))?
        }
        _ => return Err(bad("a simple value")),
    })
}

fn set(table: &mut Table, section: &str, key: &str, value: Value) {
    set_path(table, &[section, key], value)
}

/// Sets the value at `path` (section, key, and for nested tables such as
/// `[compaction.summarizer]` the sub-keys) if the tables on the way exist.
fn set_path(table: &mut Table, path: &[&str], value: Value) {
    let Some((key, tables)) = path.split_last() else {
        return;
    };
    let mut current = table;
    for name in tables {
        match current.get_mut(*name) {
            Some(Value::Table(t)) => current = t,
            _ => return,
        }
    }
    // Integers given where a float is expected are fine (rate_limit_per_sec = 500).
    let value = match (current.get(*key), value) {
        (Some(Value::Float(_)), Value::Integer(i)) => Value::Float(i as f64),
        (_, v) => v,
    };
    current.insert(key.to_string(), value);
}

/// The schema value at `path`, if there is one.
fn lookup<'a>(schema: &'a Table, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = schema.get(*first)?;
    for name in rest {
        value = value.as_table()?.get(*name)?;
    }
    Some(value)
}

/// Every settable key below the sections of `schema` with its default: `(path, default)`, where
/// a key holding a table (`[compaction.summarizer]`) contributes its own keys instead.
fn leaf_keys<'a>(
    table: &'a Table,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, &'a Value)>,
) {
    for (key, value) in table {
        prefix.push(key.clone());
        match value {
            Value::Table(t) => leaf_keys(t, prefix, out),
            _ if prefix.len() > 1 => out.push((prefix.clone(), value)),
            _ => {}
        }
        prefix.pop();
    }
}

/// Merges one table of the file (`body`, found at `path`) into `merged`, refusing keys the
/// schema table `known` does not have. Sub-tables the schema knows are merged key by key.
fn merge_table(
    merged: &mut Table,
    origin: &str,
    path: &[&str],
    known: &Table,
    body: Table,
) -> Result<(), ConfigError> {
    let dotted = path.join(".");
    for (key, value) in body {
        let Some(default) = known.get(&key) else {
            return Err(invalid(
                origin,
                format!("unknown key {dotted}.{key}; known keys: {}", names(known)),
            ));
        };
        let mut at: Vec<&str> = path.to_vec();
        at.push(&key);
        match (default, value) {
            (Value::Table(sub), Value::Table(body)) => merge_table(merged, origin, &at, sub, body)?,
            (Value::Table(_), _) => {
                return Err(invalid(
                    origin,
                    format!("{dotted}.{key} must be a table ([{dotted}.{key}])"),
                ))
            }
            (_, value) => set_path(merged, &at, value),
        }
    }
    Ok(())
}

fn names(t: &Table) -> String {
    t.keys().cloned().collect::<Vec<_>>().join(", ")
}

fn invalid(origin: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_string(),
        message,
    }
}

fn unreachable_table() -> ! {
    panic!("RelayConfig always serialises to a TOML table")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::StoreBackendKind;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("relay.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn defaults_without_a_file() {
        let c = load_from(Path::new("/nonexistent/relay.toml"), &[], &[]).unwrap();
        assert_eq!(c, RelayConfig::default());
    }

    #[test]
    fn file_then_env_then_flags() {
        let tmp = tempfile::tempdir().unwrap();
        let f = write(
            tmp.path(),
            "[delivery]\nack_timeout_ms = 1000\nmax_attempts = 3\n[limits]\nrate_limit_per_sec = 50\n",
        );
        let env = vec![
            (
                "AGENT_RELAY_DELIVERY_MAX_ATTEMPTS".to_string(),
                "7".to_string(),
            ),
            ("AGENT_RELAY_STORAGE_TYPE".to_string(), "memory".to_string()),
        ];
        let flags = vec!["delivery.ack_timeout_ms=2000".parse().unwrap()];
        let c = load_from(&f, &env, &flags).unwrap();
        assert_eq!(c.delivery.ack_timeout_ms, 2000);
        assert_eq!(c.delivery.max_attempts, 7);
        assert_eq!(c.limits.rate_limit_per_sec, 50.0);
        assert_eq!(c.store.backend, StoreBackendKind::Memory);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let f = write(tmp.path(), "[delivery]\nack_timeout = 5\n");
        let e = load_from(&f, &[], &[]).unwrap_err().to_string();
        assert!(e.contains("unknown key delivery.ack_timeout"), "{e}");
        assert!(e.contains("ack_timeout_ms"), "should list known keys: {e}");

        let f = write(tmp.path(), "[nope]\nx = 1\n");
        let e = load_from(&f, &[], &[]).unwrap_err().to_string();
        assert!(e.contains("unknown section [nope]"), "{e}");

        let env = vec![(
            "AGENT_RELAY_DELIVERY_MAX_ATTEMPTS".to_string(),
            "many".to_string(),
        )];
        let e = load_from(Path::new("/none"), &env, &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("AGENT_RELAY_DELIVERY_MAX_ATTEMPTS") && e.contains("integer"),
            "{e}"
        );

        let f = write(tmp.path(), "[delivery]\nmax_attempts = 0\n");
        let e = load_from(&f, &[], &[]).unwrap_err().to_string();
        assert!(
            e.contains("delivery.max_attempts must be at least 1"),
            "{e}"
        );

        for (toml, needle) in [
            (
                "[signing]\nrequire_signatures = \"enfroce\"\n",
                "signing.require_signatures must be off, warn or enforce (not \"enfroce\")",
            ),
            (
                "[signing]\nalgorithm = \"hmac256\"\n",
                "signing.algorithm must be hmac-sha256 or ed25519 (not \"hmac256\")",
            ),
            (
                "[signing]\nreplay_window_secs = 0\n",
                "signing.replay_window_secs must be between 1 and 86400",
            ),
        ] {
            let f = write(tmp.path(), toml);
            let e = load_from(&f, &[], &[]).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
        let f = write(
            tmp.path(),
            "[signing]\nrequire_signatures = \"warn\"\nalgorithm = \"ed25519\"\n",
        );
        assert!(load_from(&f, &[], &[]).is_ok());

        let f = write(tmp.path(), "[store]\nbackend = \"postgres\"\n");
        assert!(load_from(&f, &[], &[]).is_err());

        let f = write(tmp.path(), "not toml [");
        let e = load_from(&f, &[], &[]).unwrap_err().to_string();
        assert!(e.contains("not valid TOML"), "{e}");
    }

    #[test]
    fn array_values_from_env() {
        let env = vec![(
            "AGENT_RELAY_AUTH_ALLOW_UIDS".to_string(),
            "[1000, 1001]".to_string(),
        )];
        let c = load_from(Path::new("/none"), &env, &[]).unwrap();
        assert_eq!(c.auth.allow_uids, vec![1000, 1001]);
    }

    #[test]
    fn the_original_signing_json_is_the_lowest_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(".config/agent-relay");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("signing.json"),
            r#"{"enabled":true,"requireSignatures":true,"allowUnsignedFrom":["Dash"],"keyRotationHours":24}"#,
        )
        .unwrap();
        let env = vec![("HOME".to_string(), tmp.path().display().to_string())];
        let c = load_from(Path::new("/none"), &env, &[]).unwrap();
        assert!(c.signing.enabled);
        assert_eq!(c.signing.require_signatures, "enforce");
        assert_eq!(c.signing.allow_unsigned_from, vec!["Dash".to_string()]);
        assert_eq!(c.signing.key_rotation_hours, 24);
        // relay.toml wins over it.
        let f = write(tmp.path(), "[signing]\nrequire_signatures = \"warn\"\n");
        assert_eq!(
            load_from(&f, &env, &[]).unwrap().signing.require_signatures,
            "warn"
        );
        std::fs::write(dir.join("signing.json"), r#"{"bogus":1}"#).unwrap();
        let e = load_from(Path::new("/none"), &env, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsupported signing.json field"), "{e}");
    }

    #[test]
    fn override_syntax() {
        assert!("nodot=1".parse::<Override>().is_err());
        assert!("a.b".parse::<Override>().is_err());
        let o: Override = "limits.rate_limit_enabled = false".parse().unwrap();
        assert_eq!(o.key, "limits.rate_limit_enabled");
    }
}
