//! The user's terminal in interactive mode.
//!
//! The terminal is put in raw mode so that every key (Ctrl-C included) reaches the agent through
//! the PTY, exactly as if the agent ran directly. The original settings are restored when the
//! guard drops, and by a panic hook, so a crash never leaves the user's shell unusable.

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

use rustix::termios::{self, OptionalActions, Termios};

static SAVED: OnceLock<Mutex<Option<Termios>>> = OnceLock::new();

fn saved() -> &'static Mutex<Option<Termios>> {
    SAVED.get_or_init(|| Mutex::new(None))
}

/// Restores the terminal settings saved by [`RawMode::enter`], if any.
pub fn restore_terminal() {
    let taken = saved().lock().ok().and_then(|mut s| s.take());
    if let Some(t) = taken {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &t);
    }
}

/// Raw mode on stdin for as long as it lives.
pub struct RawMode {
    _private: (),
}

impl RawMode {
    /// Enters raw mode when stdin is a terminal (`None` otherwise).
    pub fn enter() -> std::io::Result<Option<RawMode>> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Ok(None);
        }
        let original = termios::tcgetattr(&stdin)?;
        let mut raw = original.clone();
        raw.make_raw();
        if let Ok(mut s) = saved().lock() {
            *s = Some(original);
        }
        termios::tcsetattr(&stdin, OptionalActions::Now, &raw)?;
        install_panic_hook();
        Ok(Some(RawMode { _private: () }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn install_panic_hook() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
    });
}

/// The size of the user's terminal (rows, cols), if stdout or stdin is one.
pub fn terminal_size() -> Option<(u16, u16)> {
    let from = |fd: std::os::fd::BorrowedFd<'_>| {
        termios::tcgetwinsize(fd)
            .ok()
            .filter(|w| w.ws_row > 0 && w.ws_col > 0)
            .map(|w| (w.ws_row, w.ws_col))
    };
    use std::os::fd::AsFd;
    from(std::io::stdout().as_fd()).or_else(|| from(std::io::stdin().as_fd()))
}
