//! The failure hook: every message the daemon gives up on passes through a [`FailureSink`].
//!
//! The core sink logs and counts; the dead letter queue plugs in here.

use relay_store::StoredMessage;

/// Why a message could not be delivered: the dead letter queue's reason codes.
pub use relay_dlq::FailureReason;

/// A message the daemon gave up on, with everything needed to replay it exactly.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub reason: FailureReason,
    pub message: StoredMessage,
    pub error: String,
    /// Whether `message` is a row of the message store (a DELIVER), as opposed to a SEND that
    /// was refused before anything was stored.
    pub stored: bool,
}

/// Receives every undeliverable message. Called on the router task: implementations must not
/// block (hand work to another thread or task).
pub trait FailureSink: Send + 'static {
    fn dead_letter(&mut self, letter: DeadLetter);
}

/// The default sink: a warning in the log per message. Counting happens in the router.
#[derive(Debug, Default)]
pub struct LogFailures;

impl FailureSink for LogFailures {
    fn dead_letter(&mut self, letter: DeadLetter) {
        log_dead_letter(&letter);
    }
}

/// The log line every undeliverable message gets, whatever sink receives it.
pub fn log_dead_letter(letter: &DeadLetter) {
    tracing::warn!(
        reason = letter.reason.as_str(),
        id = %letter.message.id,
        from = %letter.message.from,
        to = %letter.message.to,
        "message not delivered: {}",
        letter.error
    );
}
