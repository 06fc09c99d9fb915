//! The agent's raw output: appended to `.agent-relay/logs/<name>.log` and streamed to the daemon
//! as LOG frames for observers (`agent-relay logs -f`, dashboards).
//!
//! LOG frames are batched (at most every 200 ms, at most 16 KiB each) and best-effort: when the
//! daemon connection is slow, old log text is dropped rather than delaying messages. The file is
//! the complete record.

use std::path::Path;
use std::time::{Duration, Instant};

use relay_client::Client;
use std::io::Write;

const FLUSH_EVERY: Duration = Duration::from_millis(200);
const MAX_FRAME_TEXT: usize = 16 * 1024;
/// Log text kept for streaming while the connection is slow.
const MAX_PENDING: usize = 256 * 1024;

pub struct LogSink {
    /// Appended synchronously: a local append of one PTY chunk takes microseconds, and the
    /// file is then complete at every moment (`agent-relay logs -f` reads it live).
    file: Option<std::fs::File>,
    pending: Vec<u8>,
    last_flush: Instant,
    stream: bool,
    dropped: u64,
}

impl LogSink {
    pub async fn open(path: &Path, stream: bool) -> LogSink {
        if let Some(dir) = path.parent() {
            let _ = tokio::fs::create_dir_all(dir).await;
        }
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                tracing::warn!(path = %path.display(), error = %e, "cannot open the agent's log file; output is not logged")
            })
            .ok();
        LogSink {
            file,
            pending: Vec::new(),
            last_flush: Instant::now(),
            stream,
            dropped: 0,
        }
    }

    pub async fn write(&mut self, chunk: &[u8]) {
        if let Some(f) = self.file.as_mut() {
            let _ = f.write_all(chunk);
        }
        if self.stream {
            self.pending.extend_from_slice(chunk);
            if self.pending.len() > MAX_PENDING {
                let excess = self.pending.len() - MAX_PENDING;
                self.pending.drain(..excess);
                self.dropped += excess as u64;
            }
        }
    }

    pub async fn maybe_flush(&mut self, client: &Client) {
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush(client).await;
        }
    }

    pub async fn flush(&mut self, client: &Client) {
        self.last_flush = Instant::now();
        while !self.pending.is_empty() {
            let mut end = self.pending.len().min(MAX_FRAME_TEXT);
            // Cut on a character boundary when possible.
            while end < self.pending.len() && end > 0 && (self.pending[end] & 0xC0) == 0x80 {
                end -= 1;
            }
            if end == 0 {
                end = self.pending.len().min(MAX_FRAME_TEXT);
            }
            let text = String::from_utf8_lossy(&self.pending[..end]).into_owned();
            self.pending.drain(..end);
            if client.try_log(&text).is_err() {
                self.dropped += text.len() as u64;
                self.pending.clear();
                break;
            }
        }
    }
}
