//! What to send.

use relay_protocol::{PayloadKind, SendMeta, SendPayload};
use serde_json::{Map, Value};

/// A message to send: `SendOptions::new("Bob", "hello").thread("t1")`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SendOptions {
    /// Agent or user name, `*` (everyone), `@users`, or `#channel`.
    pub to: String,
    pub body: String,
    pub kind: PayloadKind,
    /// Free-form structured data; passed through untouched.
    pub data: Option<Map<String, Value>>,
    pub thread: Option<String>,
    /// With `to: "*"`: only subscribers of this topic receive it.
    pub topic: Option<String>,
    pub meta: Option<SendMeta>,
}

impl SendOptions {
    pub fn new(to: impl Into<String>, body: impl Into<String>) -> SendOptions {
        SendOptions {
            to: to.into(),
            body: body.into(),
            ..SendOptions::default()
        }
    }

    pub fn kind(mut self, kind: PayloadKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn data(mut self, data: Map<String, Value>) -> Self {
        self.data = Some(data);
        self
    }

    pub fn thread(mut self, thread: impl Into<String>) -> Self {
        self.thread = Some(thread.into());
        self
    }

    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    pub fn meta(mut self, meta: SendMeta) -> Self {
        self.meta = Some(meta);
        self
    }

    /// Importance 0–100 (`payload_meta.importance`).
    pub fn importance(mut self, importance: u8) -> Self {
        self.meta.get_or_insert_with(SendMeta::default).importance = Some(importance.min(100));
        self
    }

    /// Sets one key of `payload.data`.
    pub(crate) fn set_data(&mut self, key: &str, value: Value) {
        self.data
            .get_or_insert_with(Map::new)
            .insert(key.to_string(), value);
    }

    pub(crate) fn meta_mut(&mut self) -> &mut SendMeta {
        self.meta.get_or_insert_with(SendMeta::default)
    }

    pub(crate) fn payload(&self) -> SendPayload {
        SendPayload {
            kind: self.kind,
            body: self.body.clone(),
            data: self.data.clone(),
            thread: self.thread.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_sets_fields() {
        let mut data = Map::new();
        data.insert("k".into(), Value::from(1));
        let o = SendOptions::new("Bob", "hi")
            .thread("t1")
            .kind(PayloadKind::Action)
            .data(data)
            .importance(200);
        assert_eq!(o.to, "Bob");
        assert_eq!(o.thread.as_deref(), Some("t1"));
        assert_eq!(o.meta.as_ref().and_then(|m| m.importance), Some(100));
        let p = o.payload();
        assert_eq!(p.kind, PayloadKind::Action);
        assert_eq!(p.data.as_ref().map(|d| d.len()), Some(1));
    }
}
