//! The agent's terminal as a screen model.
//!
//! Agent CLIs are TUIs: they colour text, move the cursor, redraw regions and wrap lines
//! themselves. Parsing their raw byte stream with regexes breaks on all of that, so every byte the
//! agent prints goes through a terminal emulator (`vt100`) and the wrapper reads rendered text:
//!
//! - **History**: rows that scrolled off the top are final. They are kept as logical lines
//!   (wrapped rows joined), numbered from the start of the session, in a bounded deque.
//! - **Screen**: the visible rows, joined into logical lines. Rows above the cursor's row are
//!   complete; the cursor's row is still being written, so it is left out of the parse window
//!   until the output has been quiet for a while.

use std::collections::VecDeque;
use std::num::NonZeroU16;
use std::time::{Duration, Instant};

/// Output quiet for this long means the cursor's row is finished too.
const CURSOR_ROW_SETTLE: Duration = Duration::from_millis(400);

/// Collects rows that scroll off the top of the screen as logical lines.
#[derive(Default)]
struct ScrollCapture {
    /// A logical line whose rows wrap into the next scrolled row.
    partial: String,
    lines: Vec<String>,
}

impl vt100::Callbacks for ScrollCapture {
    fn on_scroll(&mut self, contents: vt100::capture::RowContents<'_>, alternate: bool) {
        if alternate {
            // Full-screen programs repaint the alternate screen; what scrolls there is not a
            // transcript.
            return;
        }
        // Writing the row twice with one capture state tells whether it wraps: the second
        // copy starts with a newline exactly when the row ended its logical line.
        let mut state = vt100::capture::BasicFormattedCaptureState::new();
        let mut first = String::new();
        let mut second = String::new();
        let _ = contents.write_formatted_basic(&mut first, &mut state);
        let _ = contents.write_formatted_basic(&mut second, &mut state);
        let ends_line = second.starts_with('\n');
        let plain: String = vt100::capture::basic_formatted_to_plain(&first).collect();
        self.partial.push_str(&plain);
        if ends_line {
            let line = std::mem::take(&mut self.partial);
            self.lines.push(line.trim_end().to_string());
        }
    }
}

/// A logical line of the parse window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowLine {
    /// Absolute line number for history lines (`Some`), `None` for screen lines.
    pub absolute: Option<u64>,
    pub text: String,
}

pub struct Screen {
    parser: vt100::Parser<ScrollCapture>,
    history: VecDeque<String>,
    history_cap: usize,
    /// Absolute number of `history[0]`.
    history_base: u64,
    last_output: Instant,
    /// Bumped whenever the output clears the screen or switches screens.
    clears: u64,
    total_bytes: u64,
}

impl Screen {
    pub fn new(rows: u16, cols: u16, history_cap: usize) -> Screen {
        let rows = NonZeroU16::new(rows.max(2)).unwrap_or(NonZeroU16::MIN);
        let cols = NonZeroU16::new(cols.max(10)).unwrap_or(NonZeroU16::MIN);
        Screen {
            parser: vt100::Parser::new_with_callbacks(rows, cols, 0, ScrollCapture::default()),
            history: VecDeque::new(),
            history_cap: history_cap.max(16),
            history_base: 0,
            last_output: Instant::now(),
            clears: 0,
            total_bytes: 0,
        }
    }

    /// Feeds agent output.
    pub fn process(&mut self, bytes: &[u8]) {
        if contains_clear(bytes) {
            self.clears += 1;
        }
        self.parser.process(bytes);
        self.total_bytes += bytes.len() as u64;
        self.last_output = Instant::now();
        self.collect_scrolled();
    }

    pub fn resize(&mut self, rows: u16, cols: u16) {
        let rows = NonZeroU16::new(rows.max(2)).unwrap_or(NonZeroU16::MIN);
        let cols = NonZeroU16::new(cols.max(10)).unwrap_or(NonZeroU16::MIN);
        self.parser.set_size(rows, cols);
        self.collect_scrolled();
    }

    fn collect_scrolled(&mut self) {
        let lines = std::mem::take(&mut self.parser.callbacks_mut().lines);
        if lines.is_empty() {
            return;
        }
        self.history.extend(lines);
        while self.history.len() > self.history_cap {
            self.history.pop_front();
            self.history_base += 1;
        }
    }

    pub fn last_output(&self) -> Instant {
        self.last_output
    }

    pub fn quiet_for(&self) -> Duration {
        self.last_output.elapsed()
    }

    pub fn clears(&self) -> u64 {
        self.clears
    }

    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    pub fn bracketed_paste(&self) -> bool {
        self.parser.screen().bracketed_paste()
    }

    pub fn alternate_screen(&self) -> bool {
        self.parser.screen().alternate_screen()
    }

    pub fn cursor(&self) -> (u16, u16) {
        self.parser.screen().cursor_position()
    }

    /// The visible rows as logical lines, each with the index of its first and last row.
    fn screen_lines(&self) -> Vec<(u16, u16, String)> {
        let screen = self.parser.screen();
        let (_, cols) = screen.size();
        let mut out = Vec::new();
        let mut current = String::new();
        let mut start = 0u16;
        for (i, row) in screen.rows(0, cols.get()).enumerate() {
            let i = u16::try_from(i).unwrap_or(u16::MAX);
            if current.is_empty() {
                start = i;
            }
            current.push_str(&row);
            if !screen.row_wrapped(i) {
                out.push((
                    start,
                    i,
                    std::mem::take(&mut current).trim_end().to_string(),
                ));
            }
        }
        if !current.is_empty() {
            out.push((start, start, current.trim_end().to_string()));
        }
        out
    }

    /// The text the grammar parses: recent history plus the finished screen lines.
    pub fn window(&self) -> Vec<WindowLine> {
        let mut lines: Vec<WindowLine> = self
            .history
            .iter()
            .enumerate()
            .map(|(i, text)| WindowLine {
                absolute: Some(self.history_base + i as u64),
                text: text.clone(),
            })
            .collect();
        let (cursor_row, _) = self.cursor();
        let settled = self.quiet_for() >= CURSOR_ROW_SETTLE;
        let screen_lines = self.screen_lines();
        // Trailing blank rows of the screen are not content.
        let last_content = screen_lines
            .iter()
            .rposition(|(_, _, t)| !t.trim().is_empty())
            .map_or(0, |i| i + 1);
        let cursor_line = screen_lines
            .iter()
            .position(|(first, last, _)| *first <= cursor_row && cursor_row <= *last);
        let take = cursor_line.map_or(last_content, |c| last_content.max(c + 1));
        for (first, last, text) in screen_lines.into_iter().take(take) {
            let holds_cursor = first <= cursor_row && cursor_row <= last;
            // The cursor's line may still be written, unless it cannot be part of a command:
            // blank, or an unindented line without a command prefix (a prompt).
            let inert = text.trim().is_empty()
                || (!text.contains("->") && !text.starts_with(char::is_whitespace));
            if holds_cursor && !settled && !inert {
                break;
            }
            lines.push(WindowLine {
                absolute: None,
                text,
            });
        }
        lines
    }

    /// Everything visible, rows joined with spaces: what injection verification searches.
    pub fn visible_text(&self) -> String {
        let screen = self.parser.screen();
        let (_, cols) = screen.size();
        let mut out = String::new();
        for row in screen.rows(0, cols.get()) {
            out.push_str(row.trim_end());
            out.push(' ');
        }
        out
    }

    /// The logical line holding the cursor, and up to `above` lines before it.
    pub fn around_cursor(&self, above: usize) -> Vec<String> {
        let (cursor_row, _) = self.cursor();
        let lines = self.screen_lines();
        let Some(idx) = lines
            .iter()
            .position(|(first, last, _)| *first <= cursor_row && cursor_row <= *last)
        else {
            return Vec::new();
        };
        let from = idx.saturating_sub(above);
        lines[from..=idx]
            .iter()
            .map(|(_, _, t)| t.clone())
            .collect()
    }

    /// The whole screen contents (for busy indicators anywhere on screen).
    pub fn contents(&self) -> String {
        self.parser.screen().contents()
    }

    /// The tail of the session as plain text (history and screen), for crash reports.
    pub fn tail_text(&self, lines: usize) -> Vec<String> {
        let mut all: Vec<String> = self.history.iter().cloned().collect();
        all.extend(self.screen_lines().into_iter().map(|(_, _, t)| t));
        while all.last().is_some_and(|l| l.trim().is_empty()) {
            all.pop();
        }
        let from = all.len().saturating_sub(lines);
        all.split_off(from)
    }
}

/// Whether a chunk clears the screen, resets the terminal or switches screens: after that a TUI
/// repaints text it had printed before.
fn contains_clear(bytes: &[u8]) -> bool {
    const NEEDLES: &[&[u8]] = &[
        b"\x1b[2J",
        b"\x1b[3J",
        b"\x1bc",
        b"\x1b[?1049h",
        b"\x1b[?1049l",
        b"\x1b[?47h",
        b"\x1b[?1047h",
    ];
    NEEDLES
        .iter()
        .any(|n| bytes.windows(n.len()).any(|w| w == *n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &Screen) -> Vec<String> {
        s.window().into_iter().map(|l| l.text).collect()
    }

    #[test]
    fn colours_and_cursor_moves_render_to_text() {
        let mut s = Screen::new(10, 40, 100);
        s.process(b"\x1b[31m->relay:\x1b[0mBob hi\r\n");
        s.process(b"  ->rel");
        // The cursor's line is still being written: left out until output settles.
        assert_eq!(texts(&s), vec!["->relay:Bob hi"]);
        // An in-place redraw of the first line changes nothing; a prompt on the cursor's line
        // cannot be part of a command and is included at once.
        s.process(b"\x1b[1A\r\x1b[2K->relay:Bob hi\r\n\x1b[2K> ");
        assert_eq!(texts(&s), vec!["->relay:Bob hi", ">"]);
    }

    #[test]
    fn scrolled_lines_become_numbered_history() {
        let mut s = Screen::new(3, 20, 100);
        for i in 0..6 {
            s.process(format!("line {i}\r\n").as_bytes());
        }
        let w = s.window();
        assert_eq!(w[0].text, "line 0");
        assert_eq!(w[0].absolute, Some(0));
        assert_eq!(w[3].text, "line 3");
        assert_eq!(w[3].absolute, Some(3));
        assert!(w.iter().any(|l| l.text == "line 5" && l.absolute.is_none()));
    }

    #[test]
    fn wrapped_rows_join_into_one_line() {
        let mut s = Screen::new(5, 10, 100);
        s.process(b"->relay:Bob 0123456789abc\r\n");
        assert_eq!(texts(&s), vec!["->relay:Bob 0123456789abc", ""]);
    }

    #[test]
    fn history_is_bounded() {
        let mut s = Screen::new(3, 20, 16);
        for i in 0..100 {
            s.process(format!("l{i}\r\n").as_bytes());
        }
        let w = s.window();
        assert!(w.len() <= 16 + 3);
        assert!(w.len() >= 2 && w[w.len() - 2].text == "l99", "{w:?}");
    }

    #[test]
    fn clears_are_counted() {
        let mut s = Screen::new(3, 20, 16);
        s.process(b"a\r\n");
        assert_eq!(s.clears(), 0);
        s.process(b"\x1b[2J\x1b[H");
        assert_eq!(s.clears(), 1);
    }
}
