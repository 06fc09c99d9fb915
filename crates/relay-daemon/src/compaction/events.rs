//! [`EventBatch`]: the routed messages of one pass of the router's loop, packed into a few
//! buffers so that recording a message costs the router no allocation of its own, and the
//! compaction thread frees one batch instead of every string of every message.

use std::ops::Range;

/// One routed message, as the router describes it.
#[derive(Debug, Clone, Copy)]
pub struct EventFields<'a> {
    /// The SEND's envelope id (what stored rows carry as `source_id`).
    pub id: &'a str,
    pub from: &'a str,
    /// As addressed: an agent, `*`, `@users`, `#channel` or `_consensus`.
    pub to: &'a str,
    pub kind: &'a str,
    pub body: &'a str,
    pub thread: Option<&'a str>,
    pub channel: Option<&'a str>,
    /// The importance the sender set (`payload_meta.importance`).
    pub importance: Option<u8>,
    /// An instruction to the agent (a spawned agent's task): never compacted away.
    pub system: bool,
    /// Epoch milliseconds.
    pub ts: u64,
}

#[derive(Debug)]
struct Packed {
    id: Range<usize>,
    from: Range<usize>,
    to: Range<usize>,
    kind: Range<usize>,
    body: Range<usize>,
    thread: Option<Range<usize>>,
    channel: Option<Range<usize>>,
    /// Indexes into `names`.
    participants: Range<usize>,
    importance: Option<u8>,
    system: bool,
    ts: u64,
}

/// Routed messages packed into one text buffer.
#[derive(Debug, Default)]
pub struct EventBatch {
    text: String,
    names: Vec<Range<usize>>,
    events: Vec<Packed>,
    /// Where the participants of the message being recorded start.
    open: usize,
}

impl EventBatch {
    /// An empty batch with room for as much as `self` holds, so that a busy router does not
    /// grow the buffers again after every hand-over.
    pub fn empty_like(&self) -> EventBatch {
        EventBatch {
            text: String::with_capacity(self.text.len()),
            names: Vec::with_capacity(self.names.len()),
            events: Vec::with_capacity(self.events.len()),
            open: 0,
        }
    }

    fn put(&mut self, s: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(s);
        start..self.text.len()
    }

    /// Adds a participant (an agent whose history gets the message being recorded).
    pub fn participant(&mut self, name: &str) {
        let span = self.put(name);
        self.names.push(span);
    }

    /// The participants added since the last [`Self::finish`] or [`Self::discard`].
    pub fn open_participants(&self) -> usize {
        self.names.len() - self.open
    }

    /// Forgets the participants added for a message that is not recorded after all.
    pub fn discard(&mut self) {
        self.names.truncate(self.open);
    }

    /// Records a message for the participants added since the last call.
    pub fn finish(&mut self, f: EventFields<'_>) {
        let participants = self.open..self.names.len();
        self.open = self.names.len();
        let packed = Packed {
            id: self.put(f.id),
            from: self.put(f.from),
            to: self.put(f.to),
            kind: self.put(f.kind),
            body: self.put(f.body),
            thread: f.thread.map(|t| self.put(t)),
            channel: f.channel.map(|c| self.put(c)),
            participants,
            importance: f.importance,
            system: f.system,
            ts: f.ts,
        };
        self.events.push(packed);
    }

    /// Recorded messages.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The messages, in the order they were recorded, with their participants.
    pub fn iter(&self) -> impl Iterator<Item = (EventFields<'_>, Vec<&str>)> + '_ {
        let text = self.text.as_str();
        let s = move |r: &Range<usize>| text.get(r.clone()).unwrap_or_default();
        self.events.iter().map(move |p| {
            let fields = EventFields {
                id: s(&p.id),
                from: s(&p.from),
                to: s(&p.to),
                kind: s(&p.kind),
                body: s(&p.body),
                thread: p.thread.as_ref().map(s),
                channel: p.channel.as_ref().map(s),
                importance: p.importance,
                system: p.system,
                ts: p.ts,
            };
            let names = self
                .names
                .get(p.participants.clone())
                .unwrap_or_default()
                .iter()
                .map(s)
                .collect();
            (fields, names)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(id: &'a str, body: &'a str) -> EventFields<'a> {
        EventFields {
            id,
            from: "Lead",
            to: "#eng",
            kind: "message",
            body,
            thread: Some("t1"),
            channel: Some("#eng"),
            importance: Some(80),
            system: false,
            ts: 7,
        }
    }

    #[test]
    fn packs_and_unpacks_messages_with_their_participants() {
        let mut b = EventBatch::default();
        b.participant("Lead");
        b.participant("Backend");
        b.finish(fields("m1", "héllo 🌍"));
        b.participant("Nobody");
        b.discard();
        assert_eq!(b.open_participants(), 0);
        b.participant("QA");
        b.finish(fields("m2", ""));
        assert_eq!(b.len(), 2);
        let all: Vec<_> = b.iter().collect();
        assert_eq!(all[0].0.id, "m1");
        assert_eq!(all[0].0.body, "héllo 🌍");
        assert_eq!(all[0].0.thread, Some("t1"));
        assert_eq!(all[0].0.importance, Some(80));
        assert_eq!(all[0].1, ["Lead", "Backend"]);
        assert_eq!(all[1].0.id, "m2");
        assert_eq!(all[1].0.body, "");
        assert_eq!(all[1].1, ["QA"]);
    }
}
