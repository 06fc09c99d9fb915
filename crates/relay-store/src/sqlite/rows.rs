//! Reading rows into the store's types, and the signature column both ways.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, Row, ToSql};

use crate::error::StoreError;
use crate::packed_sig;
use crate::types::{AgentRecord, MessageStatus, SessionRecord, SignatureJson, StoredMessage};

/// Decode a JSON text column. Malformed JSON (only possible in databases
/// written by other tools) is logged and read as absent rather than making
/// the whole row unreadable.
pub(super) fn json_column(
    row: &Row<'_>,
    idx: usize,
) -> rusqlite::Result<Option<serde_json::Value>> {
    let text: Option<String> = row.get(idx)?;
    Ok(text.and_then(|t| match serde_json::from_str(&t) {
        Ok(v) => Some(v),
        Err(e) => {
            let id: String = row.get(0).unwrap_or_default();
            tracing::warn!(id, column = idx, error = %e, "ignoring malformed JSON column");
            None
        }
    }))
}

/// The signature column's value for a row: packed when the text allows (see [`packed_sig`]),
/// else the text.
pub(super) enum SignatureParam<'a> {
    Packed(packed_sig::Blob),
    Text(&'a str),
}

impl<'a> SignatureParam<'a> {
    /// For a row whose `source_id` is `source_id`.
    pub(super) fn new(sig: &'a SignatureJson, source_id: Option<&str>) -> SignatureParam<'a> {
        match sig
            .layout()
            .and_then(|layout| packed_sig::pack_layout(layout, source_id))
        {
            Some(blob) => SignatureParam::Packed(blob),
            None => SignatureParam::Text(sig.get()),
        }
    }
}

impl ToSql for SignatureParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            SignatureParam::Packed(blob) => ValueRef::Blob(blob.as_slice()),
            SignatureParam::Text(text) => ValueRef::Text(text.as_bytes()),
        }))
    }
}

/// Decode the signature column (`source_idx` is the row's `source_id`), text or packed. A
/// malformed value (only possible in databases written by other tools) is logged and read as
/// absent, like [`json_column`].
pub(super) fn signature_column(
    row: &Row<'_>,
    idx: usize,
    source_idx: usize,
) -> rusqlite::Result<Option<SignatureJson>> {
    let sig = match row.get_ref(idx)? {
        ValueRef::Null => return Ok(None),
        ValueRef::Text(text) => signature_text(text),
        ValueRef::Blob(blob) => {
            let source_id: Option<String> = row.get(source_idx)?;
            packed_sig::unpack(blob, source_id.as_deref()).and_then(SignatureJson::from_text)
        }
        ValueRef::Integer(_) | ValueRef::Real(_) => None,
    };
    if sig.is_none() {
        let id: String = row.get(0).unwrap_or_default();
        tracing::warn!(id, column = idx, "ignoring malformed signature column");
    }
    Ok(sig)
}

/// A signature column stored as text (JSON not in the packed layout); `None` if it is not
/// UTF-8 JSON.
pub(super) fn signature_text(text: &[u8]) -> Option<SignatureJson> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| SignatureJson::from_text(t.to_string()))
}

/// Calls `each(sender, m, t)` for the signed message rows that `filter` (a WHERE clause with
/// `params`) selects, as they are read. Rows whose signature cannot be read are skipped.
pub(super) fn for_each_signed_row(
    conn: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
    mut each: impl FnMut(String, String, i64) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT sender, sig, source_id FROM messages {filter}"
    ))?;
    let mut rows = stmt.query(params)?;
    while let Some(row) = rows.next()? {
        let id_and_time = match row.get_ref(1)? {
            ValueRef::Text(text) => signature_text(text).and_then(|sig| sig.signed_id_and_time()),
            ValueRef::Blob(blob) => {
                let source_id: Option<String> = row.get(2)?;
                packed_sig::signed_id_and_time(blob, source_id.as_deref())
            }
            _ => None,
        };
        if let Some((m, t)) = id_and_time {
            each(row.get(0)?, m, t)?;
        }
    }
    Ok(())
}

/// Decode a status column. Unknown values (only possible in databases
/// written by other tools) are logged and read as `Failed`, so the message
/// is neither redelivered nor kept forever.
pub(super) fn status_column(row: &Row<'_>, idx: usize) -> rusqlite::Result<MessageStatus> {
    let text: Option<String> = row.get(idx)?;
    Ok(match text {
        None => MessageStatus::Unread,
        Some(t) => t.parse().unwrap_or_else(|_| {
            let id: String = row.get(0).unwrap_or_default();
            tracing::warn!(id, status = t, "unknown message status, treating as failed");
            MessageStatus::Failed
        }),
    })
}

pub(super) fn message_from_row(row: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: row.get(0)?,
        ts: row.get(1)?,
        from: row.get(2)?,
        to: row.get(3)?,
        topic: row.get(4)?,
        kind: row.get(5)?,
        body: row.get(6)?,
        data: json_column(row, 7)?,
        payload_meta: json_column(row, 8)?,
        payload_extra: json_column(row, 9)?,
        thread: row.get(10)?,
        delivery_seq: row.get(11)?,
        delivery_session_id: row.get(12)?,
        session_id: row.get(13)?,
        status: status_column(row, 14)?,
        is_urgent: row.get::<_, Option<i64>>(15)?.unwrap_or(0) != 0,
        is_broadcast: row.get::<_, Option<i64>>(16)?.unwrap_or(0) != 0,
        original_to: row.get(17)?,
        source_id: row.get(18)?,
        sig: signature_column(row, 19, 18)?,
        attempts: row.get::<_, Option<i64>>(20)?.unwrap_or(0),
        last_error: row.get(21)?,
    })
}

pub(super) fn session_from_row(row: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: row.get(0)?,
        agent_name: row.get(1)?,
        cli: row.get(2)?,
        started_at: row.get(3)?,
        ended_at: row.get(4)?,
        resume_token: row.get(5)?,
        closed_by: row.get(6)?,
        message_count: row.get::<_, Option<i64>>(7)?.unwrap_or(0),
    })
}

pub(super) fn agent_from_row(row: &Row<'_>) -> rusqlite::Result<AgentRecord> {
    Ok(AgentRecord {
        name: row.get(0)?,
        entity_type: row
            .get::<_, Option<String>>(1)?
            .unwrap_or_else(|| "agent".to_string()),
        cli: row.get(2)?,
        program: row.get(3)?,
        model: row.get(4)?,
        task: row.get(5)?,
        working_directory: row.get(6)?,
        team: row.get(7)?,
        display_name: row.get(8)?,
        first_seen: row.get(9)?,
        last_seen: row.get(10)?,
        messages_sent: row.get::<_, Option<i64>>(11)?.unwrap_or(0),
        messages_received: row.get::<_, Option<i64>>(12)?.unwrap_or(0),
    })
}
