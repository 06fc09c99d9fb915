//! Identifiers and names.
//!
//! Ids are 24 lower-case hex characters: 12 of milliseconds since the epoch, then 12 random
//! (48 bits). Time first keeps the message store's id index append-only (random keys would
//! rewrite pages all over the index on every commit); the random tail is the short id printed to
//! people and agents (`[a1b2c3d4]`, see [`short_id`]), which `agent-relay read` resolves.

const ID_MASK: u64 = 0xffff_ffff_ffff;

/// A fresh message/session id: 24 lower-case hex characters, time-ordered.
pub fn new_id() -> String {
    let ms = crate::now_ms() & ID_MASK;
    format!("{ms:012x}{:012x}", fastrand::u64(..) & ID_MASK)
}

/// Characters of an id shown as its short form.
pub const SHORT_ID_LEN: usize = 8;

/// The short form of an id: its last 8 characters (the random part of ids made by [`new_id`]).
pub fn short_id(id: &str) -> &str {
    match id.char_indices().rev().nth(SHORT_ID_LEN - 1) {
        Some((i, _)) => &id[i..],
        None => id,
    }
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
    fn ids_are_unique_time_ordered_hex_of_fixed_length() {
        let ids: Vec<String> = (0..10_000).map(|_| new_id()).collect();
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), 10_000);
        let shorts: std::collections::HashSet<&str> = ids.iter().map(|i| short_id(i)).collect();
        assert!(shorts.len() > 9_980, "short ids should rarely collide");
        assert!(ids
            .iter()
            .all(|i| i.len() == 24 && i.chars().all(|c| c.is_ascii_hexdigit())));
        let first_ms = u64::from_str_radix(&ids[0][..12], 16).unwrap();
        let last_ms = u64::from_str_radix(&ids[9_999][..12], 16).unwrap();
        assert!(first_ms <= last_ms && last_ms <= crate::now_ms());
        assert_eq!(short_id(&ids[0]), &ids[0][16..]);
        assert_eq!(short_id("abc"), "abc");
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
