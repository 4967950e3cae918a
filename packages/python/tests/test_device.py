"""The device authorization grant (RFC 8628) and revocation at logout (RFC
7009) against the demo server, whose AS offers both: the device code is
WDJB-MJHT, polls every second, and the simulated user approves after two
polls (or denies, with --fault deny)."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from mcp_oauth import Declined, DeviceCode, LogoutReport, McpOAuth, TimedOut, _host

from conftest import mcp_post, no_browser

USER_CODE = "WDJB-MJHT"


def device_auth(demo, home, seen: list, **kw) -> McpOAuth:
    return McpOAuth(
        demo.url, home=home, open_browser=no_browser, device=True, on_device_code=seen.append, callback_timeout=60, **kw
    )


def test_device_grant_signs_in_without_a_browser(demo, home):
    seen: list = []
    steps: list = []
    auth = device_auth(demo, home, seen, progress=lambda p: steps.append(p.kind))
    t0 = time.monotonic()
    token = auth.token()
    assert time.monotonic() - t0 < 30
    assert len(seen) == 1 and isinstance(seen[0], DeviceCode)
    info = seen[0]
    assert info.user_code == USER_CODE and info.expires_in > 0
    assert info.verification_uri.startswith(demo.base)
    assert info.verification_uri_complete is None or USER_CODE in info.verification_uri_complete
    log = demo.log()
    assert log.count("POST /device_authorization") == 1
    assert log.count("POST /token") >= 2  # polled until the approval
    assert not any(l.startswith("GET /authorize") for l in log)
    assert mcp_post(demo.url, token) == 200
    assert "listening" not in steps and "browser-opened" not in steps  # no loopback listener either
    assert steps.count("device-code") == 1 and "polling" in steps
    # Stored: the next call serves it, no new code.
    assert auth.token() == token and len(seen) == 1


def test_device_grant_denied_is_declined(demo_factory, home):
    demo = demo_factory(faults=("deny",))
    seen: list = []
    auth = device_auth(demo, home, seen)
    with pytest.raises(Declined):
        auth.token()
    assert [i.user_code for i in seen] == [USER_CODE]
    assert auth.status().declined
    mark = len(demo.log())
    with pytest.raises(Declined):  # latched: no second code, no request
        auth.token()
    assert demo.log()[mark:] == [] and len(seen) == 1


def test_no_approval_in_time(demo, home):
    # The simulated user approves after two 1 s polls: later than this.
    seen: list = []
    auth = McpOAuth(demo.url, home=home, open_browser=no_browser, device=True, on_device_code=seen.append, callback_timeout=1.5)
    t0 = time.monotonic()
    with pytest.raises(TimedOut) as e:
        auth.token()
    assert time.monotonic() - t0 < 10
    assert "device code" in str(e.value) and "paste" not in str(e.value)
    assert len(seen) == 1 and not auth.status().has_token


def test_cancel_ends_the_wait_for_the_approval(demo, home):
    auth: list = []

    def shown(info: DeviceCode) -> None:
        # From another thread, as an application's "cancel" button would.
        threading.Timer(0.2, auth[0].cancel).start()

    auth.append(McpOAuth(demo.url, home=home, open_browser=no_browser, device=True, on_device_code=shown))
    t0 = time.monotonic()
    with pytest.raises(Declined):
        auth[0].token()
    assert time.monotonic() - t0 < 10
    assert auth[0].status().declined and not auth[0].status().has_token


def test_ctrl_c_ends_the_wait_then_raises(demo, home, monkeypatch):
    slept: list = []

    def interrupted(s: float) -> None:
        slept.append(s)
        raise KeyboardInterrupt

    monkeypatch.setattr(_host, "_sleep", interrupted)
    seen: list = []
    auth = device_auth(demo, home, seen)
    with pytest.raises(KeyboardInterrupt):
        auth.token()
    assert slept and len(seen) == 1
    # The engine ended the sign-in as declined, its instance intact.
    assert auth.status().declined
    monkeypatch.setattr(_host, "_sleep", time.sleep)
    auth.retry()
    assert mcp_post(demo.url, auth.token()) == 200
    assert len(seen) == 2


def test_default_device_code_display(capsys):
    _host.default_device_code(DeviceCode("https://as.example/device\x1b[2J", None, "AB\x07C-D", 90))
    err = capsys.readouterr().err
    assert "https://as.example/device\\u{1b}[2J" in err and "AB\\u{7}C-D" in err
    assert "\x1b" not in err and "\x07" not in err
    assert "1 min 30 s" in err


def test_pause_steps_and_cap(monkeypatch, tmp_path):
    host = _host.HostImpl(tmp_path / "store", None, None, lambda p: None, None, False)
    steps: list = []

    def sleep(s: float) -> None:
        steps.append(s)
        time.sleep(s)

    monkeypatch.setattr(_host, "_sleep", sleep)
    t0 = time.monotonic()
    assert host.prompts_pause(None, 350).tag == "ok"
    assert 0.3 <= time.monotonic() - t0 < 2 and max(steps) <= _host.PAUSE_STEP_S
    assert _host.PAUSE_CAP_S == 600
    monkeypatch.setattr(_host, "PAUSE_CAP_S", 0.2)  # whatever is asked, at most the cap
    t0 = time.monotonic()
    assert host.prompts_pause(None, 10**12).tag == "ok"
    assert time.monotonic() - t0 < 2
    host.cancel.set()
    out = host.prompts_pause(None, 60_000)
    assert out.tag == "err" and "cancel" in out.payload


def test_logout_revokes_at_the_as_then_forgets(demo, browser, home):
    auth = McpOAuth(demo.url, home=home, open_browser=browser)
    token = auth.token()
    mark = len(demo.log())
    report = auth.logout()
    assert report == LogoutReport(["refresh_token", "access_token"], None, None)
    assert demo.log()[mark:].count("POST /revoke") == 2
    assert not auth.status().has_token
    assert mcp_post(demo.url, token) == 401  # dead at the server too


def test_logout_without_revoking_only_forgets(demo, browser, home):
    auth = McpOAuth(demo.url, home=home, open_browser=browser)
    token = auth.token()
    mark = len(demo.log())
    report = auth.logout(revoke=False)
    assert report.revoked == [] and report.failed is None and report.skipped
    assert "POST /revoke" not in demo.log()[mark:]
    assert not auth.status().has_token
    assert mcp_post(demo.url, token) == 200  # still good at the server: only forgotten here


def test_alogout(demo, browser, home):
    auth = McpOAuth(demo.url, home=home, open_browser=browser)
    auth.token()

    async def main() -> LogoutReport:
        return await auth.alogout()

    report = anyio.run(main)
    assert report.revoked == ["refresh_token", "access_token"]
    # Nothing stored any more: nothing to revoke, said so.
    again = anyio.run(auth.alogout, True)
    assert again.revoked == [] and again.failed is None and again.skipped

