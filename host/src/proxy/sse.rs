//! An incremental `text/event-stream` reader: yields each event as it
//! arrives (a server request in a stream must reach the client before the
//! stream ends), with a size cap per line and per event.

use std::io::{BufRead, Read};

/// One event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    /// `event:` (empty means "message").
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// `id:`, when the event set one.
    pub id: Option<String>,
    /// `retry:` in milliseconds, when set.
    pub retry: Option<u64>,
}

/// Why the stream stopped.
#[derive(Debug)]
pub enum SseError {
    /// An event larger than the cap.
    TooLarge,
    /// The connection failed (or its read deadline passed).
    Io(std::io::Error),
}

/// Reads events from a body.
pub struct EventReader<R> {
    input: R,
    cap: usize,
}

impl<R: BufRead> EventReader<R> {
    /// Events from `input`, each at most `cap` bytes.
    pub fn new(input: R, cap: usize) -> Self {
        Self { input, cap }
    }

    /// The next event; `Ok(None)` at the end of the stream.
    pub fn next_event(&mut self) -> Result<Option<Event>, SseError> {
        let mut ev = Event::default();
        let mut has_data = false;
        let mut size = 0usize;
        loop {
            let mut raw = Vec::new();
            let n = (&mut self.input)
                .take(self.cap as u64 + 1)
                .read_until(b'\n', &mut raw)
                .map_err(SseError::Io)?;
            if n == 0 {
                // End of stream: an unterminated event is dropped (the spec's rule).
                return Ok(None);
            }
            if raw.len() > self.cap {
                return Err(SseError::TooLarge);
            }
            size += raw.len();
            if size > self.cap {
                return Err(SseError::TooLarge);
            }
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches('\n').trim_end_matches('\r');
            if line.is_empty() {
                if has_data || ev.id.is_some() || ev.retry.is_some() {
                    return Ok(Some(ev));
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "event" => ev.event = value.to_string(),
                "data" => {
                    if has_data {
                        ev.data.push('\n');
                    }
                    ev.data.push_str(value);
                    has_data = true;
                }
                "id" if !value.contains('\0') => ev.id = Some(value.to_string()),
                "retry" => ev.retry = value.parse().ok(),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_arrive_one_by_one() {
        let body = b"event: endpoint\ndata: /messages?s=1\n\n: keep-alive\n\nid: 7\ndata: {\"a\":\ndata: 1}\n\nretry: 500\n\ndata: unterminated";
        let mut r = EventReader::new(&body[..], 1024);
        let e = r.next_event().unwrap().unwrap();
        assert_eq!((e.event.as_str(), e.data.as_str()), ("endpoint", "/messages?s=1"));
        let e = r.next_event().unwrap().unwrap();
        assert_eq!((e.id.as_deref(), e.data.as_str()), (Some("7"), "{\"a\":\n1}"));
        assert_eq!(r.next_event().unwrap().unwrap().retry, Some(500));
        assert!(r.next_event().unwrap().is_none());
    }

    #[test]
    fn an_event_over_the_cap_stops_the_stream() {
        let body = format!("data: {}\n\n", "x".repeat(100));
        let mut r = EventReader::new(body.as_bytes(), 50);
        assert!(matches!(r.next_event(), Err(SseError::TooLarge)));
        let body = "data: 0123456789\n".repeat(10);
        let mut r = EventReader::new(body.as_bytes(), 50);
        assert!(matches!(r.next_event(), Err(SseError::TooLarge)));
    }
}
