//! Text for a terminal. Servers choose much of what the CLI prints (error
//! descriptions, client ids, scopes, URLs); none of it may reach a terminal
//! raw, or an ESC / CSI / OSC sequence (or a C1 control such as U+009B, U+009D)
//! could rewrite the screen, the title or the clipboard. Every control
//! character is shown as a visible `\u{..}` escape instead.

use std::borrow::Cow;

/// `text` with every control character (C0, DEL, C1) escaped.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// JSON for a terminal: serde_json escapes C0 controls but leaves DEL and the
/// C1 controls raw (JSON allows them); they can only occur inside strings,
/// where a `\u00XX` escape means the same.
pub fn json_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_control() && !matches!(c, '\n' | '\t' | '\r') {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// True when `text` holds anything a terminal would act on.
pub fn has_controls(text: &str) -> bool {
    text.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_c0_c1_esc_csi_osc_and_keeps_the_rest() {
        let hostile = "a\x1b[2J\x1b]52;c;aGk=\x07b\u{9b}31m\u{9d}x\r\nc\u{7f}";
        let out = printable(hostile);
        assert!(!has_controls(&out), "{out:?}");
        assert!(out.starts_with("a\\u{1b}[2J\\u{1b}]52;c;aGk=\\u{7}b\\u{9b}31m\\u{9d}x\\u{d}\\u{a}c\\u{7f}"));
        assert_eq!(printable("plain text, ünïcode ✓"), "plain text, ünïcode ✓");
        let json = serde_json::to_string_pretty(&serde_json::json!({"id": hostile})).unwrap();
        let safe = json_safe(&json);
        assert!(!safe.chars().any(|c| c.is_control() && c != '\n'), "{safe:?}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["id"], hostile, "the same JSON value");
    }
}
