//! The local side: newline-delimited JSON-RPC on stdin/stdout. stdout carries
//! only whole JSON-RPC messages, one per line, written under one lock so that
//! messages from different threads never interleave.

use std::io::{BufRead, Read, Write};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// The client's end: every message goes out as one compact JSON line.
#[derive(Clone)]
pub struct ClientWriter {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl ClientWriter {
    /// Writes to `out` (stdout in the CLI).
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: Arc::new(Mutex::new(out)),
        }
    }

    /// Sends one message. Serializing a `Value` never yields a raw newline,
    /// so the line framing holds whatever the server put in its strings.
    pub fn send(&self, msg: &Value) {
        let mut line = msg.to_string();
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A closed stdout means the client is gone; the stdin EOF ends us.
        let _ = out.write_all(line.as_bytes()).and_then(|_| out.flush());
    }

    /// A JSON-RPC error response for `id`.
    pub fn error(&self, id: &Value, code: i64, message: &str, data: Option<Value>) {
        let mut err = serde_json::json!({"code": code, "message": message});
        if let Some(d) = data {
            err["data"] = d;
        }
        self.send(&serde_json::json!({"jsonrpc": "2.0", "id": id, "error": err}));
    }
}

/// One line read from the client.
pub enum Line {
    /// A line (without its newline), at most the cap.
    Message(Vec<u8>),
    /// A line over the cap: skipped up to its newline.
    TooLong,
    /// End of input.
    Eof,
}

/// Reads the next line, at most `cap` bytes; a longer one is skipped whole.
pub fn read_line(input: &mut impl BufRead, cap: usize) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    let n = input.by_ref().take(cap as u64 + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        return Ok(Line::Message(buf));
    }
    if buf.len() <= cap {
        // The last line, without a newline.
        return Ok(Line::Message(buf));
    }
    // Over the cap: drop the rest of this line in bounded chunks.
    loop {
        let mut chunk = Vec::new();
        let n = input.by_ref().take(64 * 1024).read_until(b'\n', &mut chunk)?;
        if n == 0 || chunk.last() == Some(&b'\n') {
            return Ok(Line::TooLong);
        }
    }
}

/// What a client message is, for routing.
#[derive(Debug, Clone, PartialEq)]
pub struct Kind {
    /// Ids of the requests in it (answers are owed for these).
    pub request_ids: Vec<Value>,
    /// The method of the first request or notification, if any.
    pub method: Option<String>,
}

/// Classifies a message or batch.
pub fn classify(msg: &Value) -> Kind {
    let items: Vec<&Value> = match msg {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut kind = Kind {
        request_ids: Vec::new(),
        method: None,
    };
    for m in items {
        if let Some(method) = m.get("method").and_then(Value::as_str) {
            if kind.method.is_none() {
                kind.method = Some(method.to_string());
            }
            if let Some(id) = m.get("id").filter(|i| !i.is_null()) {
                kind.request_ids.push(id.clone());
            }
        }
    }
    kind
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_capped_and_framed() {
        let data = b"{\"a\":1}\r\n0123456789abcdef\n{\"b\":2}".to_vec();
        let mut r = std::io::BufReader::new(&data[..]);
        assert!(matches!(read_line(&mut r, 10).unwrap(), Line::Message(m) if m == b"{\"a\":1}"));
        assert!(matches!(read_line(&mut r, 10).unwrap(), Line::TooLong));
        assert!(matches!(read_line(&mut r, 10).unwrap(), Line::Message(m) if m == b"{\"b\":2}"));
        assert!(matches!(read_line(&mut r, 10).unwrap(), Line::Eof));
    }

    #[test]
    fn requests_notifications_and_responses_are_told_apart() {
        let k = classify(&serde_json::json!({"jsonrpc":"2.0","id":3,"method":"tools/list"}));
        assert_eq!(k.request_ids, vec![serde_json::json!(3)]);
        assert_eq!(k.method.as_deref(), Some("tools/list"));
        let k = classify(&serde_json::json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
        assert!(k.request_ids.is_empty());
        let k = classify(&serde_json::json!({"jsonrpc":"2.0","id":"s1","result":{}}));
        assert_eq!(
            k,
            Kind {
                request_ids: vec![],
                method: None
            }
        );
    }

    #[test]
    fn hostile_strings_stay_on_one_line() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        struct W(Arc<Mutex<Vec<u8>>>);
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let w = ClientWriter::new(Box::new(W(buf.clone())));
        w.send(&serde_json::json!({"x": "a\nb\r\u{2028}c"}));
        let out = buf.lock().unwrap().clone();
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
    }
}
