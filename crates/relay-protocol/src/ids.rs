//! Identifiers and names.
//!
//! Ids are 24 lower-case hex characters (96 random bits). They start with random bits rather
//! than a timestamp so that the short prefixes printed to agents (`[a1b2c3d4]`) stay unique:
//! `agent-relay read <prefix>` resolves them.

/// A fresh message/session id: 24 lower-case hex characters.
pub fn new_id() -> String {
    format!("{:016x}{:08x}", fastrand::u64(..), fastrand::u32(..))
}

/// Names the daemon reserves for itself; clients cannot register them.
pub const RESERVED_PREFIX: char = '_';

/// Longest agent name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Longest envelope id accepted.
pub const MAX_ID_LEN: usize = 128;

/// Why an agent name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("agent name is empty; pass 1-64 characters of A-Z a-z 0-9 _ . -")]
    Empty,
    #[error("agent name is {0} characters long; the limit is 64")]
    TooLong(usize),
    #[error("agent name {name:?} contains {bad:?}; only A-Z a-z 0-9 _ . - are allowed")]
    BadChar { name: String, bad: char },
    #[error("agent name {0:?} starts with '_', which is reserved for the daemon (_consensus, _system, _router)")]
    Reserved(String),
}

/// Checks an agent or user name: 1–64 characters of `[A-Za-z0-9_.-]`, not starting with `_`.
pub fn validate_agent_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_LEN {
        return Err(NameError::TooLong(chars));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(NameError::BadChar {
            name: name.to_string(),
            bad,
        });
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Err(NameError::Reserved(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_hex_of_fixed_length() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        let prefixes: std::collections::HashSet<String> =
            ids.iter().map(|i| i[..8].to_string()).collect();
        assert!(
            prefixes.len() > 9_980,
            "8-char prefixes should rarely collide"
        );
        assert!(ids
            .iter()
            .all(|i| i.len() == 24 && i.chars().all(|c| c.is_ascii_hexdigit())));
    }

    #[test]
    fn name_rules() {
        assert!(validate_agent_name("Alice").is_ok());
        assert!(validate_agent_name("worker-1.test_x").is_ok());
        assert_eq!(validate_agent_name(""), Err(NameError::Empty));
        assert!(matches!(
            validate_agent_name(&"a".repeat(65)),
            Err(NameError::TooLong(65))
        ));
        assert!(validate_agent_name(&"a".repeat(64)).is_ok());
        assert!(matches!(
            validate_agent_name("a b"),
            Err(NameError::BadChar { bad: ' ', .. })
        ));
        assert!(matches!(
            validate_agent_name("proj:agent"),
            Err(NameError::BadChar { bad: ':', .. })
        ));
        assert!(matches!(
            validate_agent_name("_consensus"),
            Err(NameError::Reserved(_))
        ));
        assert!(matches!(
            validate_agent_name("Ålice"),
            Err(NameError::BadChar { .. })
        ));
    }
}
