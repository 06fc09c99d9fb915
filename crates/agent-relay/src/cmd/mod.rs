//! One module per command.

pub mod agents;
pub mod consensus;
pub mod context;
pub mod dlq;
pub mod down;
pub mod history;
pub mod keys;
pub mod logs;
pub mod read;
pub mod run;
pub mod send;
pub mod spawn;
pub mod status;
pub mod tail;
pub mod up;
