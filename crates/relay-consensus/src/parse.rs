//! The text protocol: message bodies sent to `_consensus`.
//!
//! ```text
//! PROPOSE: <title>
//! TYPE: majority|supermajority|unanimous|weighted|quorum
//! PARTICIPANTS: A, B, C            (weighted: A:3, B, C=0.5)
//! DESCRIPTION: <text, may continue on following lines>
//! TIMEOUT: <ms> | 30s | 5m | 1h    QUORUM: <n>    THRESHOLD: 0.75 | 75% | 3/4
//!
//! VOTE <proposal-id> approve|reject|abstain [reason, may span lines]
//! ```
//!
//! Tolerance: header names and vote values are case-insensitive; space
//! around names, values and the colon is ignored; CRLF and CR line ends are
//! accepted; `PROPOSAL:` is accepted for `PROPOSE:` and `VOTE:` for `VOTE`;
//! headers may come in any order. In a proposal, every line that does not
//! start with a recognised header (including unknown headers such as
//! `PRIORITY: high`) is description text, in the order it appears; so
//! `DESCRIPTION:` may continue on the following lines up to the next
//! recognised header. Participants may be written `@Name`.

use thiserror::Error;

use crate::request::{clean_reason, Command, CreateProposal};
use crate::types::{ConsensusType, VoteValue};

const PROPOSE_FORMAT: &str = "PROPOSE: <title>\n  TYPE: majority|supermajority|unanimous|weighted|quorum\n  PARTICIPANTS: A, B, C\n  DESCRIPTION: <text>";
const VOTE_FORMAT: &str = "VOTE <proposal-id> approve|reject|abstain [reason]";

/// Why a message body is not a valid command. The message is meant to be
/// sent back to the agent as is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Neither a proposal nor a vote.
    #[error("not a consensus command; send a proposal:\n  {PROPOSE_FORMAT}\nor a vote:\n  {VOTE_FORMAT}")]
    NotACommand,
    /// No `PROPOSE:` line, or an empty title.
    #[error("a proposal needs a title: the first line must be PROPOSE: <title>, e.g. PROPOSE: Adopt the new API")]
    MissingTitle,
    /// No `PARTICIPANTS:` line, or an empty list.
    #[error("PARTICIPANTS is missing or empty; list the voters separated by commas, e.g. PARTICIPANTS: Alice, Bob, Carol")]
    MissingParticipants,
    /// Unknown `TYPE:` value.
    #[error("TYPE must be one of majority, supermajority, unanimous, weighted, quorum; got {0:?}")]
    InvalidType(String),
    /// Unreadable `TIMEOUT:` value.
    #[error("TIMEOUT must be a duration such as 300000 (milliseconds), 30s, 5m or 1h; got {0:?}")]
    InvalidTimeout(String),
    /// Unreadable `QUORUM:` value.
    #[error("QUORUM must be a whole number of voters such as 3; got {0:?}")]
    InvalidQuorum(String),
    /// Unreadable `THRESHOLD:` value.
    #[error("THRESHOLD must be a fraction such as 0.75 or a percentage such as 75%; got {0:?}")]
    InvalidThreshold(String),
    /// Unreadable weight in `PARTICIPANTS:`.
    #[error("weight of {participant} must be a number such as 2 (PARTICIPANTS: Alice:2, Bob:1); got {got:?}")]
    InvalidWeight {
        /// The participant.
        participant: String,
        /// The text after `:` or `=`.
        got: String,
    },
    /// A header given twice.
    #[error("{0} appears more than once; give each header once")]
    DuplicateHeader(&'static str),
    /// `VOTE` without an id.
    #[error("VOTE needs a proposal id and a value: {VOTE_FORMAT}")]
    MissingVoteId,
    /// `VOTE <id>` without a value.
    #[error("VOTE needs a value after the proposal id: VOTE {0} approve|reject|abstain [reason]")]
    MissingVoteValue(String),
    /// A vote value other than approve, reject, abstain.
    #[error("vote value must be approve, reject or abstain; got {0:?} (format: {VOTE_FORMAT})")]
    InvalidVoteValue(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    Propose,
    Type,
    Participants,
    Description,
    Timeout,
    Quorum,
    Threshold,
}

impl Header {
    fn name(self) -> &'static str {
        match self {
            Header::Propose => "PROPOSE",
            Header::Type => "TYPE",
            Header::Participants => "PARTICIPANTS",
            Header::Description => "DESCRIPTION",
            Header::Timeout => "TIMEOUT",
            Header::Quorum => "QUORUM",
            Header::Threshold => "THRESHOLD",
        }
    }

    fn lookup(name: &str) -> Option<Header> {
        const NAMES: [(&str, Header); 8] = [
            ("propose", Header::Propose),
            ("proposal", Header::Propose),
            ("type", Header::Type),
            ("participants", Header::Participants),
            ("description", Header::Description),
            ("timeout", Header::Timeout),
            ("quorum", Header::Quorum),
            ("threshold", Header::Threshold),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, h)| *h)
    }
}

/// `Some((header, value))` when `line` starts with a recognised header.
fn header(line: &str) -> Option<(Header, &str)> {
    let (name, value) = line.trim_start().split_once(':')?;
    Some((Header::lookup(name.trim())?, value.trim()))
}

/// Parse the body of a message sent to `_consensus`.
pub fn parse_command(body: &str) -> Result<Command, ParseError> {
    let text = normalise(body);
    let text = text.trim();
    let first = text.lines().next().unwrap_or("");
    if header(first).is_some() {
        return parse_propose(text).map(Command::Propose);
    }
    if let Some(rest) = strip_keyword(text, "vote") {
        return parse_vote(rest);
    }
    Err(ParseError::NotACommand)
}

/// Drop a byte-order mark and turn CRLF / CR line ends into LF.
fn normalise(body: &str) -> String {
    body.trim_start_matches('\u{feff}')
        .replace("\r\n", "\n")
        .replace('\r', "\n")
}

/// `text` without a leading `keyword` (any case) and optional `:`, when the
/// keyword is a whole word.
fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = &text[keyword.len()..];
    match rest.chars().next() {
        None => Some(rest),
        Some(':') => Some(&rest[1..]),
        Some(c) if c.is_whitespace() => Some(rest),
        Some(_) => None,
    }
}

/// The next whitespace-delimited token and what follows it.
fn next_token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

/// Strip quoting people put around ids: `<prop_x>`, `"prop_x"`, `` `prop_x` ``.
fn clean_id(id: &str) -> &str {
    id.trim_matches(['<', '>', '"', '\'', '`', ',', ':', ';'])
}

fn parse_vote(rest: &str) -> Result<Command, ParseError> {
    let (mut id, after_id) = next_token(rest).ok_or(ParseError::MissingVoteId)?;
    let (mut value, reason) =
        next_token(after_id).ok_or_else(|| ParseError::MissingVoteValue(clean_id(id).into()))?;
    let strip = |v: &str| -> String { v.trim_end_matches(['.', ',', ':', ';', '!']).to_string() };
    // Tolerate `VOTE approve prop_x`.
    if strip(id).parse::<VoteValue>().is_ok() && strip(value).parse::<VoteValue>().is_err() {
        std::mem::swap(&mut id, &mut value);
    }
    let value_text = strip(value);
    let value = value_text
        .parse::<VoteValue>()
        .map_err(|_| ParseError::InvalidVoteValue(value_text.clone()))?;
    let reason = reason
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Command::Vote {
        id: clean_id(id).to_string(),
        value,
        reason: clean_reason(Some(&reason)),
    })
}

#[derive(Default)]
struct Fields {
    title: Option<String>,
    ctype: Option<ConsensusType>,
    participants: Option<String>,
    timeout: Option<u64>,
    quorum: Option<usize>,
    threshold: Option<f64>,
}

fn set_once<T>(slot: &mut Option<T>, h: Header, v: T) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(ParseError::DuplicateHeader(h.name()));
    }
    *slot = Some(v);
    Ok(())
}

fn parse_propose(text: &str) -> Result<CreateProposal, ParseError> {
    let mut f = Fields::default();
    let mut description: Vec<&str> = Vec::new();
    for line in text.lines() {
        let Some((h, value)) = header(line) else {
            description.push(line.trim_end());
            continue;
        };
        match h {
            Header::Propose => set_once(&mut f.title, h, value.to_string())?,
            Header::Type => set_once(&mut f.ctype, h, value.parse()?)?,
            Header::Participants => set_once(&mut f.participants, h, value.to_string())?,
            Header::Description => {
                if !value.is_empty() {
                    description.push(value);
                }
            }
            Header::Timeout => set_once(&mut f.timeout, h, parse_duration_ms(value)?)?,
            Header::Quorum => {
                let q = value
                    .parse()
                    .map_err(|_| ParseError::InvalidQuorum(value.to_string()))?;
                set_once(&mut f.quorum, h, q)?;
            }
            Header::Threshold => set_once(&mut f.threshold, h, parse_fraction(value)?)?,
        }
    }
    let title = f.title.filter(|t| !t.is_empty());
    let title = title.ok_or(ParseError::MissingTitle)?;
    let mut req = CreateProposal {
        title,
        ctype: f.ctype,
        timeout_ms: f.timeout,
        quorum: f.quorum,
        threshold: f.threshold,
        ..CreateProposal::default()
    };
    for entry in f.participants.as_deref().unwrap_or("").split([',', ';']) {
        let entry = entry.trim();
        let (name, weight) = match entry.rsplit_once([':', '=']) {
            Some((n, w)) => (n.trim(), Some(w.trim())),
            None => (entry, None),
        };
        let name = name.trim_start_matches('@').trim();
        if name.is_empty() {
            continue;
        }
        if let Some(w) = weight {
            let weight = w
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| ParseError::InvalidWeight {
                    participant: name.to_string(),
                    got: w.to_string(),
                })?;
            req.weights.insert(name.to_string(), weight);
        }
        req.participants.push(name.to_string());
    }
    if req.participants.is_empty() {
        return Err(ParseError::MissingParticipants);
    }
    let description = description.join("\n");
    let description = description.trim_matches('\n').trim();
    if !description.is_empty() {
        req.description = Some(description.to_string());
    }
    Ok(req)
}

/// `300000`, `500ms`, `30s`, `5m`, `1.5h`, `1d` (any case, space allowed
/// before the unit) to milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, ParseError> {
    let err = || ParseError::InvalidTimeout(text.to_string());
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let factor: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "ms" => 1.0,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000.0,
        "d" | "day" | "days" => 86_400_000.0,
        _ => return Err(err()),
    };
    if number.is_empty() {
        return Err(err());
    }
    if !number.contains('.') {
        let n: u64 = number.parse().map_err(|_| err())?;
        return Ok(n.saturating_mul(factor as u64));
    }
    let ms = number.parse::<f64>().map_err(|_| err())? * factor;
    if !ms.is_finite() {
        return Err(err());
    }
    // Saturating float-to-int conversion; the engine caps the timeout anyway.
    Ok(ms.round() as u64)
}

/// `0.75`, `75%` or `3/4` to a fraction.
fn parse_fraction(text: &str) -> Result<f64, ParseError> {
    let err = || ParseError::InvalidThreshold(text.to_string());
    if let Some((num, den)) = text.split_once('/') {
        let num: f64 = num.trim().parse().map_err(|_| err())?;
        let den: f64 = den.trim().parse().map_err(|_| err())?;
        let x = num / den;
        return if x.is_finite() { Ok(x) } else { Err(err()) };
    }
    let (number, scale) = match text.strip_suffix('%') {
        Some(n) => (n.trim(), 100.0),
        None => (text, 1.0),
    };
    let x: f64 = number.parse().map_err(|_| err())?;
    if !x.is_finite() {
        return Err(err());
    }
    Ok(x / scale)
}
