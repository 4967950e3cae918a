"""Text for a terminal (cf. host/src/terminal.rs). Servers choose much of what
is shown (error descriptions, URLs, client ids); none of it may reach a
terminal raw, or an ESC / CSI / OSC sequence (or a C1 control such as U+009B)
could rewrite the screen, the title or the clipboard, and a CR or LF could
fake a line. tests/vectors/terminal_text.json holds the shared cases."""

from __future__ import annotations

import re

# Unicode general category Cc: C0, DEL and C1.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with every control character shown as `\\u{<lowercase hex>}`."""
    return _CONTROL.sub(lambda m: f"\\u{{{ord(m.group()):x}}}", text)


def printable_lines(text: str) -> str:
    """`printable` line by line, for messages this package lays out over
    several lines itself (their server-supplied parts are escaped already)."""
    return "\n".join(printable(line) for line in text.split("\n"))
