"""The auth flow's behaviour against the demo servers: refresh with rotation,
the decline latch, single flight, a mid-session 401."""

from __future__ import annotations

import threading
import time

import anyio
import httpx2
import pytest

from mcp_oauth import AuthorizationRequired, Declined, McpOAuth

from conftest import mcp_post, no_browser

LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
# The engine refreshes a token 60 s before it expires, but at most half its
# lifetime before: a 6 s token is fresh for 3 s, then every call refreshes;
# the server accepts it 6 s.
TTL = 6
STALE_AFTER = 3.3


def test_refresh_keeps_the_rotated_refresh_token(demo_factory, browser, home):
    demo = demo_factory(access_ttl=TTL)
    auth = McpOAuth(demo.url, home=home, open_browser=browser)
    t1 = auth.token()
    assert len(browser.opened) == 1
    time.sleep(STALE_AFTER)
    mark = len(demo.log())
    t2 = auth.token()  # refresh: one POST /token, no browser
    assert t2 != t1 and demo.as_requests(mark) == ["POST /token"]
    # A new instance (a new process) reads the rotated pair from disk and
    # refreshes with the new refresh token: the server would flag a reuse.
    time.sleep(STALE_AFTER)
    t3 = McpOAuth(demo.url, home=home, open_browser=no_browser).token()
    assert t3 not in (t1, t2)
    assert not demo.reuse_detected()
    assert len(browser.opened) == 1
    assert mcp_post(demo.url, t3) == 200


def test_decline_latch_then_retry(demo, browser, home):
    asked = []
    answer = [False]

    def consent(req):
        asked.append(req)
        return answer[0]

    auth = McpOAuth(demo.url, home=home, open_browser=browser, consent=consent)
    with httpx2.Client(auth=auth) as c:
        with pytest.raises(Declined) as e:
            c.post(demo.url, json=LIST)
        assert "retry()" in str(e.value)
        assert asked[0].server_url == demo.url and asked[0].issuer == demo.base
        assert asked[0].reason == "first-login"
        # Latched: fails fast, no HTTP at all, no second question.
        mark = len(demo.log())
        for _ in range(3):
            with pytest.raises(Declined):
                c.post(demo.url, json=LIST)
        with pytest.raises(Declined):
            auth.token()
        assert demo.log()[mark:] == []
        assert len(asked) == 1 and browser.opened == []
        assert auth.status().declined
        # retry() clears the latch: asked again, and this time it works.
        answer[0] = True
        auth.retry()
        r = c.post(demo.url, json=LIST)
    assert r.status_code == 200
    assert len(asked) == 2 and len(browser.opened) == 1


def test_silent_mode_never_involves_the_user(demo, home):
    auth = McpOAuth(demo.url, home=home, open_browser=no_browser, interactive=False)
    with pytest.raises(AuthorizationRequired) as e:
        auth.token()
    assert "mcp-oauth login" in str(e.value)
    assert demo.as_requests() == []


def test_concurrent_threads_share_one_flow(demo, browser, home):
    auth = McpOAuth(demo.url, home=home, open_browser=browser)
    n, results, errors = 8, [], []
    start = threading.Barrier(n)

    def call():
        try:
            start.wait(timeout=10)
            # connection: close — idle keep-alive connections held by the
            # waiting threads can starve the demo server's connection pool.
            with httpx2.Client(auth=auth, timeout=60, headers={"connection": "close"}) as c:
                results.append(c.post(demo.url, json=LIST).status_code)
        except Exception as e:  # surfaced by the assertions below
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert errors == [] and results == [200] * n
    assert len(browser.opened) == 1
    assert demo.log().count("POST /register") == 1


def test_concurrent_tasks_share_one_flow(demo, browser, home):
    auth = McpOAuth(demo.url, home=home, open_browser=browser)
    n, results = 8, []

    async def main():
        async with httpx2.AsyncClient(auth=auth, timeout=60, headers={"connection": "close"}) as c:

            async def one():
                results.append((await c.post(demo.url, json=LIST)).status_code)

            with anyio.fail_after(90):
                async with anyio.create_task_group() as tg:
                    for _ in range(n):
                        tg.start_soon(one)

    anyio.run(main)
    assert results == [200] * n
    assert len(browser.opened) == 1
    assert demo.log().count("POST /register") == 1


def test_mid_session_401_reauthorizes_and_retries_once(demo, browser, home):
    auth = McpOAuth(demo.url, home=home, open_browser=browser)
    with httpx2.Client(auth=auth) as c:
        assert c.post(demo.url, json=LIST).status_code == 200
        demo.revoke()  # every access and refresh token is now dead
        mark = len(demo.log())
        r = c.post(demo.url, json=LIST)
    assert r.status_code == 200 and r.json()["result"]["tools"][0]["name"] == "echo"
    log = demo.log()[mark:]
    # The stale token got a 401; the refresh was refused; a new
    # authorization went through the browser; the request was retried once.
    assert log[0] == "POST /mcp" and log[-1] == "POST /mcp"
    assert "POST /token" in log and "GET /authorize" in log
    assert log.count("POST /mcp") == 2
    assert len(browser.opened) == 2


def test_every_mid_session_401_is_answered_with_a_refresh(demo, browser, home):
    # The 2xx after a retry tells the engine the new token works, which
    # re-arms its once-per-rejection refresh: a long-lived client refreshes
    # on every later 401 too, instead of signing in again.
    auth = McpOAuth(demo.url, home=home, open_browser=browser)
    for run in ("sync", "async"):
        if run == "sync":
            with httpx2.Client(auth=auth) as c:
                assert c.post(demo.url, json=LIST).status_code == 200
                for _ in range(3):
                    demo.revoke_access()
                    mark = len(demo.log())
                    assert c.post(demo.url, json=LIST).status_code == 200
                    assert demo.log()[mark:] == ["POST /mcp", "POST /token", "POST /mcp"], run
        else:

            async def rounds():
                async with httpx2.AsyncClient(auth=auth) as c:
                    for _ in range(3):
                        demo.revoke_access()
                        mark = len(demo.log())
                        assert (await c.post(demo.url, json=LIST)).status_code == 200
                        assert demo.log()[mark:] == ["POST /mcp", "POST /token", "POST /mcp"], run

            anyio.run(rounds)
    assert len(browser.opened) == 1


def test_sessions_in_parallel_threads(demo, browser, home):
    # Separate sessions run their engine calls at the same time (wasmtime-py
    # shares conversion state between threads: see _engine._PerThreadSet).
    token = McpOAuth(demo.url, home=home, open_browser=browser).token()
    sides = [McpOAuth(demo.url, home=home, open_browser=no_browser) for _ in range(8)]
    got, errors = [], []

    def run(a):
        try:
            for _ in range(150):
                got.append(a.token())
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(a,)) for a in sides]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and got == [token] * 8 * 150
