//! Turning the rendered window into commands, each exactly once.
//!
//! The grammar is pure: it parses whatever window it is given. The window is re-parsed as output
//! arrives, so the same printed command is seen many times; this module decides which sightings
//! are new.
//!
//! - A command wholly in **history** (rows that scrolled off, never redrawn) has a stable
//!   identity: its first absolute line number and its content.
//! - A command on the **screen** can be redrawn in place, moved by a repaint, or scrolled into
//!   history. Screen sightings are counted per content: more copies than already sent means new
//!   commands (an agent that prints the same message twice sends it twice); a copy that scrolls
//!   into history takes its credit with it.
//! - After the agent clears the screen, TUIs repaint text they printed before. For a while after
//!   a clear, a sighting of something sent recently is treated as the repaint it is.
//! - Text we injected is echoed by the agent; commands inside it are ignored (an injected
//!   message must never make this agent send, spawn or release).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use relay_grammar::{Command, GrammarOptions};

use crate::screen::WindowLine;

/// How long after a clear repainted commands are recognised.
const REPAINT_GRACE: Duration = Duration::from_secs(5);
/// Commands sent this recently can be recognised in a repaint.
const REPAINT_MEMORY: Duration = Duration::from_secs(300);
/// Screen credits of commands that vanished without scrolling (a redraw in progress) are kept
/// this long.
const VANISH_GRACE: Duration = Duration::from_secs(5);
/// Injected texts remembered for echo suppression.
const INJECTED_MEMORY: usize = 64;

/// A command found for the first time.
#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    pub command: Command,
    /// The raw window lines it was parsed from.
    pub source: String,
}

pub struct Detector {
    opts: GrammarOptions,
    sent_history: HashSet<(u64, String)>,
    screen_credit: HashMap<String, usize>,
    vanished: Vec<(String, Instant)>,
    recent: VecDeque<(String, Instant)>,
    last_clears: u64,
    repaint_until: Option<Instant>,
    injected: VecDeque<String>,
}

impl Detector {
    pub fn new(opts: GrammarOptions) -> Detector {
        Detector {
            opts,
            sent_history: HashSet::new(),
            screen_credit: HashMap::new(),
            vanished: Vec::new(),
            recent: VecDeque::new(),
            last_clears: 0,
            repaint_until: None,
            injected: VecDeque::new(),
        }
    }

    /// Remembers text typed into the agent so that its echo never counts as output.
    pub fn note_injected(&mut self, text: &str) {
        let normalised = normalise(text);
        if normalised.is_empty() {
            return;
        }
        self.injected.push_back(normalised);
        while self.injected.len() > INJECTED_MEMORY {
            self.injected.pop_front();
        }
    }

    /// Parses the window and returns the commands not seen before, in window order.
    pub fn scan(&mut self, window: &[WindowLine], clears: u64) -> Vec<Detected> {
        self.scan_with(window, clears, relay_grammar::WindowEnd::Open)
    }

    /// [`Detector::scan`] after the agent exited: commands waiting for a following line are
    /// complete now.
    pub fn scan_final(&mut self, window: &[WindowLine], clears: u64) -> Vec<Detected> {
        self.scan_with(window, clears, relay_grammar::WindowEnd::Final)
    }

    fn scan_with(
        &mut self,
        window: &[WindowLine],
        clears: u64,
        end: relay_grammar::WindowEnd,
    ) -> Vec<Detected> {
        let now = Instant::now();
        if clears != self.last_clears {
            self.last_clears = clears;
            self.repaint_until = Some(now + REPAINT_GRACE);
        }
        let repainting = self.repaint_until.is_some_and(|t| now < t);
        while self
            .recent
            .front()
            .is_some_and(|(_, t)| now.duration_since(*t) > REPAINT_MEMORY)
        {
            self.recent.pop_front();
        }
        self.vanished
            .retain(|(_, t)| now.duration_since(*t) <= VANISH_GRACE);

        let texts: Vec<&str> = window.iter().map(|l| l.text.as_str()).collect();
        let parsed = relay_grammar::parse_window_with(&texts, &self.opts, end);
        let first_screen = window
            .iter()
            .position(|l| l.absolute.is_none())
            .unwrap_or(window.len());

        let mut history_cmds = Vec::new();
        let mut screen_cmds = Vec::new();
        for p in parsed {
            if matches!(p.command, Command::Rejected(_)) {
                continue;
            }
            let last = p.last_line.min(window.len().saturating_sub(1));
            let first = p.first_line.min(last);
            let source = texts[first..=last].join("\n");
            if self.is_echo_of_injection(&source) {
                continue;
            }
            let key = format!("{:?}", p.command);
            if last < first_screen {
                let abs = window[first].absolute.unwrap_or(0);
                history_cmds.push((abs, key, p.command, source));
            } else {
                screen_cmds.push((key, p.command, source));
            }
        }

        let mut found = Vec::new();
        for (abs, key, command, source) in history_cmds {
            if self.sent_history.contains(&(abs, key.clone())) {
                continue;
            }
            self.sent_history.insert((abs, key.clone()));
            // It scrolled off the screen: the screen credit moves with it.
            if let Some(c) = self.screen_credit.get_mut(&key) {
                if *c > 0 {
                    *c -= 1;
                    continue;
                }
            }
            if let Some(i) = self.vanished.iter().position(|(k, _)| *k == key) {
                self.vanished.remove(i);
                continue;
            }
            self.remember_sent(&key, now);
            found.push(Detected { command, source });
        }
        // Keep the history set to the window.
        if let Some(oldest) = window.first().and_then(|l| l.absolute) {
            self.sent_history.retain(|(abs, _)| *abs >= oldest);
        }

        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut new_screen = Vec::new();
        for (key, command, source) in screen_cmds {
            let n = counts.entry(key.clone()).or_insert(0);
            *n += 1;
            let credit = self.screen_credit.get(&key).copied().unwrap_or(0);
            if *n <= credit {
                continue;
            }
            // Not yet accounted for: a repaint of something sent before, or new.
            if let Some(i) = self.vanished.iter().position(|(k, _)| *k == key) {
                self.vanished.remove(i);
                continue;
            }
            if repainting {
                if let Some(i) = self.recent.iter().position(|(k, _)| *k == key) {
                    self.recent.remove(i);
                    continue;
                }
            }
            new_screen.push((key, command, source));
        }
        // Credits that disappeared from the screen without scrolling may come back.
        for (key, credit) in &self.screen_credit {
            let now_count = counts.get(key).copied().unwrap_or(0);
            for _ in now_count..*credit {
                self.vanished.push((key.clone(), now));
            }
        }
        self.screen_credit = counts;
        for (key, command, source) in new_screen {
            self.remember_sent(&key, now);
            found.push(Detected { command, source });
        }
        found
    }

    fn remember_sent(&mut self, key: &str, now: Instant) {
        self.recent.push_back((key.to_string(), now));
        while self.recent.len() > 256 {
            self.recent.pop_front();
        }
    }

    fn is_echo_of_injection(&self, source: &str) -> bool {
        let n = normalise(source);
        if n.is_empty() {
            return false;
        }
        self.injected.iter().any(|inj| inj.contains(&n))
    }
}

/// Text with every glyph a TUI may add (box drawing, bullets, prompts) and all whitespace
/// removed, so that an echo wrapped or decorated by the agent still matches what we typed.
pub(crate) fn normalise(text: &str) -> String {
    text.chars()
        .filter(|c| {
            !c.is_whitespace()
                && !matches!(
                    c,
                    '│' | '┃'
                        | '╭'
                        | '╮'
                        | '╰'
                        | '╯'
                        | '─'
                        | '>'
                        | '›'
                        | '»'
                        | '❯'
                        | '⏺'
                        | '●'
                        | '•'
                        | '$'
                        | '%'
                        | '#'
                )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::screen::Screen;

    fn scan(d: &mut Detector, s: &Screen) -> Vec<String> {
        d.scan(&s.window(), s.clears())
            .into_iter()
            .map(|c| match c.command {
                Command::Message(m) => format!("{}:{}", m.to, m.body),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn detector() -> Detector {
        Detector::new(GrammarOptions::default())
    }

    #[test]
    fn a_command_is_found_once_across_redraws_and_scrolling() {
        let mut s = Screen::new(4, 40, 100);
        let mut d = detector();
        s.process(b"->relay:Bob hello\r\n> ");
        assert_eq!(scan(&mut d, &s), vec!["Bob:hello"]);
        assert!(scan(&mut d, &s).is_empty());
        // Redraw in place.
        s.process(b"\r\x1b[1A\x1b[2K->relay:Bob hello\r\n> ");
        assert!(scan(&mut d, &s).is_empty());
        // Scroll it into history.
        for i in 0..6 {
            s.process(format!("output {i}\r\n").as_bytes());
        }
        assert!(scan(&mut d, &s).is_empty());
    }

    #[test]
    fn the_same_message_printed_twice_is_two_messages() {
        let mut s = Screen::new(10, 40, 100);
        let mut d = detector();
        s.process(b"->relay:Bob ACK\r\n");
        assert_eq!(scan(&mut d, &s), vec!["Bob:ACK"]);
        s.process(b"working\r\n->relay:Bob ACK\r\n");
        assert_eq!(scan(&mut d, &s), vec!["Bob:ACK"]);
    }

    #[test]
    fn two_copies_in_one_burst_that_scroll_straight_into_history() {
        let mut s = Screen::new(3, 40, 100);
        let mut d = detector();
        s.process(b"->relay:Bob ping\r\nx\r\n->relay:Bob ping\r\na\r\nb\r\nc\r\nd\r\n");
        assert_eq!(scan(&mut d, &s), vec!["Bob:ping", "Bob:ping"]);
        s.process(b"e\r\n");
        assert!(scan(&mut d, &s).is_empty());
    }

    #[test]
    fn a_repaint_after_clear_sends_nothing() {
        let mut s = Screen::new(10, 40, 100);
        let mut d = detector();
        s.process(b"->relay:Bob one\r\n->relay:Bob two\r\n");
        assert_eq!(scan(&mut d, &s).len(), 2);
        s.process(b"\x1b[2J\x1b[H");
        assert!(scan(&mut d, &s).is_empty());
        s.process(b"->relay:Bob one\r\n->relay:Bob two\r\n");
        assert!(scan(&mut d, &s).is_empty());
    }

    #[test]
    fn echoed_injections_trigger_nothing() {
        let mut s = Screen::new(10, 60, 100);
        let mut d = detector();
        let injected =
            "Relay message from Eve [abcd1234]: please run\n->relay:release Bob\n->relay:Carol hi";
        d.note_injected(injected);
        s.process(b"> Relay message from Eve [abcd1234]: please run\r\n  ->relay:release Bob\r\n  ->relay:Carol hi\r\n\r\n");
        assert!(scan(&mut d, &s).is_empty());
    }
}
