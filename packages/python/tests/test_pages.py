"""The page each browser tab that reaches the loopback listener gets: the
listener holds the redirect open until the engine answers it (a stray one
at once, the sign-in's once its outcome is known). The test is the browser:
it follows the authorization URL to its redirect, then GETs the listener."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2
import pytest

from mcp_oauth import AuthFailed, Declined, McpOAuth, _callback

CSP = "default-src 'none'"


class Tab:
    """An `open_browser` that acts as the browser, in a thread of its own (the
    engine waits at the listener after `open_browser` returns)."""

    def __init__(self, stray: bool = False) -> None:
        self.stray = stray
        self.opened: list[str] = []
        self.answers: dict = {}  # "stray" / "page": (status, headers, text, seconds)
        self.errors: list = []
        self._thread: threading.Thread | None = None

    def __call__(self, url: str) -> None:
        self.opened.append(url)
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()

    def _get(self, c: httpx2.Client, url: str) -> tuple:
        t0 = time.monotonic()
        r = c.get(url)
        return r.status_code, r.headers, r.text, time.monotonic() - t0

    def _run(self, url: str) -> None:
        try:
            redirect_uri = parse_qs(urlsplit(url).query)["redirect_uri"][0]
            with httpx2.Client(follow_redirects=False, timeout=30) as c:
                for _ in range(5):  # the AS's own redirects, up to the one to the listener
                    r = c.get(url)
                    assert 300 <= r.status_code < 400, f"the AS answered {r.status_code}"
                    url = urljoin(url, r.headers["location"])
                    if url.startswith(redirect_uri):
                        break
                else:
                    raise AssertionError("no redirect to the listener")
                if self.stray:  # a forged redirect first: another tab, a local process
                    self.answers["stray"] = self._get(c, redirect_uri + "?code=forged&state=wrong")
                self.answers["page"] = self._get(c, url)
        except Exception as e:  # surfaced by the test
            self.errors.append(e)

    def join(self) -> None:
        assert self._thread is not None, "the browser was never opened"
        self._thread.join(timeout=30)
        assert self.errors == [] and "page" in self.answers


def signed_page(answer: tuple) -> str:
    status, headers, text, _ = answer
    assert headers["content-type"].startswith("text/html")
    assert headers["content-security-policy"].startswith(CSP)
    assert "no-store" in headers["cache-control"]
    return text


def test_signed_in_page_and_a_stray_redirect_ignored(demo, home):
    tab = Tab(stray=True)
    auth = McpOAuth(demo.url, home=home, open_browser=tab, callback_timeout=60)
    token = auth.token()
    tab.join()
    assert token and len(tab.opened) == 1
    status, _, text, took = tab.answers["stray"]
    assert status == 400 and "ignored" in text.lower() and took < 5  # answered at once
    signed_page(tab.answers["stray"])
    page = tab.answers["page"]
    assert page[0] == 200
    text = signed_page(page)
    assert "Signed in" in text and demo.url in text


def test_declined_in_the_browser(demo_factory, home):
    demo = demo_factory(faults=("deny",))
    tab = Tab()
    auth = McpOAuth(demo.url, home=home, open_browser=tab, callback_timeout=60)
    with pytest.raises(Declined):
        auth.token()
    tab.join()
    page = tab.answers["page"]
    assert page[0] == 200 and "declined" in signed_page(page).lower()


def test_token_error_page_names_the_reason(demo_factory, home):
    demo = demo_factory(faults=("token-error",))
    tab = Tab()
    auth = McpOAuth(demo.url, home=home, open_browser=tab, callback_timeout=60)
    with pytest.raises(AuthFailed) as e:
        auth.token()
    assert e.value.oauth_error == "invalid_grant"
    tab.join()
    text = signed_page(tab.answers["page"])
    assert "failed" in text.lower() and "invalid_grant" in text


def _raw_get(port: int, path: str, out: list) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        got = b""
        while chunk := s.recv(4096):
            got += chunk
    out.append(got.decode())


def test_listener_holds_the_arrival_until_respond():
    l = _callback.Listener(None)
    out: list = []
    t = threading.Thread(target=_raw_get, args=(l.port, "/callback?code=a&state=b", out))
    t.start()
    assert l.next(5) == ("redirect", "code=a&state=b")
    time.sleep(0.3)
    assert out == []  # held open: the engine has not answered yet
    big = "<!doctype html>" + "x" * 300_000  # more than one send takes
    headers = [
        ("content-type", "text/html; charset=utf-8"),
        ("content-security-policy", CSP),
        ("x-evil", "a\r\nset-cookie: b"),  # dropped: no header injection
        ("content-length", "1"),  # the listener frames the body itself
    ]
    l.respond(200, headers, big)
    t.join(timeout=10)
    head, _, body = out[0].partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 OK") and body == big
    assert f"content-security-policy: {CSP}" in head and "set-cookie" not in head.lower()
    assert f"content-length: {len(big)}" in head and "content-length: 1\r" not in head
    l.respond(200, [], "nothing to answer")  # a paste, or twice: no-op
    # One left unanswered: a neutral 400 when the wait goes on past it...
    out.clear()
    t = threading.Thread(target=_raw_get, args=(l.port, "/callback?code=c&state=d", out))
    t.start()
    assert l.next(5) == ("redirect", "code=c&state=d")
    assert l.next(0.3) == ("timed-out", None)
    t.join(timeout=10)
    assert out[0].startswith("HTTP/1.1 400 Bad Request") and "ignored" in out[0]
    # ...and a neutral 200 when the listener closes.
    t = threading.Thread(target=_raw_get, args=(l.port, "/callback?code=e&state=f", out))
    t.start()
    assert l.next(5) == ("redirect", "code=e&state=f")
    l.close()
    t.join(timeout=10)
    assert out[1].startswith("HTTP/1.1 200 OK") and "Return to your application" in out[1]
    assert all("cache-control: no-store" in a for a in out)


def test_ctrl_c_while_waiting_for_the_browser(demo, home, monkeypatch):
    def interrupted(self, timeout_s):
        raise KeyboardInterrupt

    monkeypatch.setattr(_callback.Listener, "next", interrupted)
    auth = McpOAuth(demo.url, home=home, open_browser=lambda url: None, callback_timeout=60)
    with pytest.raises(KeyboardInterrupt):
        auth.token()
    assert auth.status().declined  # the engine ended the sign-in, its instance intact
