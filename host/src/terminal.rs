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

/// `url` as a QR code in Unicode half blocks, for a phone to scan, when
/// stderr is a terminal wide and tall enough to show it whole; `None`
/// otherwise (the address and the code are printed as text anyway).
pub fn qr_code(url: &str) -> Option<String> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let (terminal_size::Width(cols), terminal_size::Height(rows)) = terminal_size::terminal_size_of(std::io::stderr())?;
    qr_code_within(url, usize::from(cols), usize::from(rows))
}

/// The QR code for `url` if it fits in `cols` x `rows` character cells.
pub fn qr_code_within(url: &str, cols: usize, rows: usize) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(url.as_bytes()).ok()?;
    let text = code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    let width = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    let height = text.lines().count();
    (width <= cols && height + 8 <= rows).then_some(text)
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

    #[test]
    fn a_qr_code_is_shown_only_where_it_fits() {
        let url = "https://auth.example.com/device?user_code=WDJB-MJHT";
        let qr = super::qr_code_within(url, 200, 100).expect("fits");
        assert!(qr.contains('█') || qr.contains('▀') || qr.contains('▄'));
        assert!(super::qr_code_within(url, 20, 100).is_none(), "too narrow");
        assert!(super::qr_code_within(url, 200, 10).is_none(), "too short");
    }
}
