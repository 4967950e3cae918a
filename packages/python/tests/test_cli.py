"""The store shared with the Rust CLI, and the cross-host refresh lock."""

from __future__ import annotations

import os
import subprocess
import threading
import time

from mcp_oauth import McpOAuth

from conftest import CLI, cli, mcp_post, no_browser
from test_flows import STALE_AFTER, TTL


def test_cli_login_then_python(demo, home):
    r = cli(home, "login", demo.url)
    assert r.returncode == 0, r.stderr
    mark = len(demo.log())
    token = McpOAuth(demo.url, home=home, open_browser=no_browser).token()
    assert demo.as_requests(mark) == []  # no request to the AS at all
    assert mcp_post(demo.url, token) == 200


def test_python_login_then_cli(demo, browser, home):
    token = McpOAuth(demo.url, home=home, open_browser=browser).token()
    mark = len(demo.log())
    r = cli(home, "token", demo.url)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == token
    assert demo.as_requests(mark) == []
    st = cli(home, "status", demo.url, "--json")
    assert st.returncode == 0 and demo.base in st.stdout and token not in st.stdout


def test_default_browser_is_BROWSER_run_without_a_shell(demo, home, tmp_path, monkeypatch):
    from conftest import HEADLESS

    record = tmp_path / "argv.txt"
    # Words split on whitespace, the URL appended as the last argument.
    monkeypatch.setenv("BROWSER", f"{HEADLESS} --record {record}")
    McpOAuth(demo.url, home=home).token()
    argv = record.read_text().splitlines()
    assert len(argv) == 1 and argv[0].startswith(f"{demo.base}/authorize?")


def test_python_and_cli_refresh_at_the_same_moment(demo_factory, browser, home):
    # A CLI `token` takes a few ms, so Python instances (each with its own
    # store handle: its own locks) fire every 1.5 ms around the CLI's start.
    demo = demo_factory(access_ttl=TTL)
    McpOAuth(demo.url, home=home, open_browser=browser).token()
    env = dict(os.environ, MCP_OAUTH_HOME=str(home))
    n = 8
    for _ in range(3):  # three races, each on a stale token
        time.sleep(STALE_AFTER)
        sides = [McpOAuth(demo.url, home=home, interactive=False) for _ in range(n)]
        out: list = [None] * n
        t0 = time.monotonic() + 0.1

        def fire(i: int) -> None:
            time.sleep(max(0.0, t0 + i * 0.0015 - time.monotonic()))
            out[i] = sides[i].token()

        threads = [threading.Thread(target=fire, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        time.sleep(max(0.0, t0 - time.monotonic()))
        proc = subprocess.run([str(CLI), "token", demo.url], env=env, capture_output=True, text=True, timeout=60)
        for t in threads:
            t.join(timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert not demo.reuse_detected()
        assert None not in out
        assert all(mcp_post(demo.url, tok) == 200 for tok in set(out) | {proc.stdout.strip()})
    assert len(browser.opened) == 1
    assert demo.log().count("POST /token") >= 4  # the code, and at least one refresh per race


_REFRESH = """
import sys, time
from mcp_oauth import McpOAuth
def no(url): raise SystemExit("browser")
auth = McpOAuth(sys.argv[1], home=sys.argv[2], open_browser=no)
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # all start at once
print(auth.token())
"""


def test_python_processes_refresh_at_the_same_moment(demo_factory, browser, home):
    # Lock protocol 2 between processes of this package alone.
    import sys

    demo = demo_factory(access_ttl=TTL)
    McpOAuth(demo.url, home=home, open_browser=browser).token()
    at = str(time.time() + max(STALE_AFTER, 1.5))
    procs = [
        subprocess.Popen([sys.executable, "-c", _REFRESH, demo.url, str(home), at], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    tokens = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4
    assert not demo.reuse_detected()
    assert all(mcp_post(demo.url, t) == 200 for t in tokens)
    assert demo.log().count("POST /token") >= 2  # the code and at least one refresh
