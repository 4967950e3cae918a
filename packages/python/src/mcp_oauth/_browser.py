"""The `browser` import: `$BROWSER` when set (run directly, never through a
shell, the URL as its last argument), else the platform opener. Only http(s)
URLs are ever opened."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from urllib.parse import urlsplit


def check_openable(url: str) -> None:
    """Refuses anything but http(s) (CVE-2025-6514); ValueError with the reason."""
    try:
        u = urlsplit(url)
    except ValueError:
        raise ValueError("refusing to open something that is not a URL") from None
    if u.scheme in ("http", "https") and u.netloc:
        return
    if u.scheme:
        raise ValueError(f"refusing to open a {u.scheme}: URL")
    raise ValueError("refusing to open something that is not a URL")


def browser_command(value: str) -> list[str] | None:
    """`$BROWSER` as an argv prefix: the first ':'-separated alternative, split on whitespace."""
    first = value.split(":")[0].split()
    return first or None


def _platform_opener() -> list[str]:
    if sys.platform == "darwin":
        return ["open"]
    if os.name == "nt":
        return ["rundll32", "url.dll,FileProtocolHandler"]
    return ["xdg-open"]


def open_system_browser(url: str) -> None:
    """Opens `url` with `$BROWSER` or the platform opener; RuntimeError when that fails."""
    check_openable(url)
    env = os.environ.get("BROWSER", "")
    argv = browser_command(env) if env.strip() else None
    wait = argv is None  # platform openers return at once; a quick failure means no browser
    argv = (argv or _platform_opener()) + [url]
    try:
        child = subprocess.Popen(  # a list argv: no shell, ever
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True
        )
    except OSError as e:
        raise RuntimeError(f"could not run {argv[0]}: {e.strerror or e}") from None
    if wait:
        try:
            code = child.wait(timeout=3)
        except subprocess.TimeoutExpired:
            code = 0
        else:
            if code != 0:
                raise RuntimeError(f"{argv[0]} failed (exit status {code})")
    # Reap the child whenever it exits, without blocking the flow.
    threading.Thread(target=child.wait, daemon=True).start()
