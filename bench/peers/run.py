"""The runner of scripts/bench-peers (standard library only; run by that
script, which installs the peers first).

Starts two demo servers (`mcp-oauth demo --serve`: one with the default
access-token lifetime, one with --access-ttl 1 for the expired situation),
runs every client in every situation as a fresh process, interleaved (round
by round, client by client), times each process with a monotonic clock,
counts the requests the servers saw during it (GET /_demo/log before and
after), stops the servers by PID, and prints and writes the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# The expired situation's server issues access tokens for this long: longer
# than the 60 s expiry margin mcp-oauth and mcp-remote keep (else every
# refreshed token would count as expired too and each request would refresh),
# and waited out before the expired runs.
EXPIRED_TTL_S = 70
RUN_DEADLINE_S = 60.0  # a hung client is killed after this and the run recorded as failed
BROWSER_GRACE_S = 1.0  # after the browser failed, how long a client may take to give up on its own

SITUATIONS = ["cold", "warm", "expired", "token"]
SITUATION_TEXT = {
    "cold": "cold: empty store; discovery, registration, browser, token, then the MCP workload",
    "warm": "warm: a valid token stored by the cold run; the MCP workload",
    "expired": f"expired: the stored access token expired on the server's clock (a second demo server with --access-ttl {EXPIRED_TTL_S}; the stores were authorized before the rounds and each run waits until its token is older than that), refresh token valid; the MCP workload",
    "token": "token: obtain a valid access token with the warm store, no MCP request (the smallest program each stack allows)",
}
WORKLOAD = "connect, initialize, notifications/initialized, tools/list, tools/call echo, close"


# -- the servers -----------------------------------------------------------


class Demo:
    def __init__(self, exe: Path, work: Path, name: str, extra: list[str]) -> None:
        self.out = work / f"{name}.out"
        self.proc = subprocess.Popen(
            [str(exe), "demo", "--serve", "--port", "0", *extra],
            stdin=subprocess.DEVNULL,
            stdout=open(self.out, "w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        self.url = ""
        while time.monotonic() < deadline:
            m = re.search(r"^MCP server:\s*(\S+)", self.out.read_text(), re.M)
            if m:
                self.url = m.group(1)
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if not self.url:
            self.stop()
            raise SystemExit(f"the demo server did not start: {self.out.read_text().strip()}")
        self.base = self.url.rsplit("/mcp", 1)[0]

    def log(self) -> list[str]:
        with urllib.request.urlopen(f"{self.base}/_demo/log", timeout=10) as r:
            return json.load(r)["requests"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# -- one run of one client ---------------------------------------------------


@dataclass
class Outcome:
    ok: bool
    ms: float
    requests: list[str]
    error: str = ""
    prompt_sent: bool = False


def tail(text: str, n: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else "…" + text[-n:]


def browser_state(log: Path) -> tuple[str | None, bool]:
    """(the failure the browser reported, whether an authorization URL had `prompt`)."""
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return None, False
    failed = next((l[len("failed ") :] for l in lines if l.startswith("failed ")), None)
    prompt = any(l.startswith("open ") and re.search(r"[?&]prompt=", l) for l in lines)
    return failed, prompt


def run_process(argv: list[str], env: dict, blog: Path, stdio_session=None) -> tuple[bool, float, str]:
    """Runs one fresh process to its end. Returns (ok, wall ms, what went wrong)."""
    t0 = time.perf_counter_ns()
    p = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.PIPE if stdio_session else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    out_q: queue.Queue = queue.Queue()
    err_chunks: list[bytes] = []

    def read_stdout() -> None:
        for line in p.stdout:
            out_q.put(line)
        out_q.put(None)

    threading.Thread(target=read_stdout, daemon=True).start()
    threading.Thread(target=lambda: err_chunks.extend(p.stderr), daemon=True).start()
    deadline = time.monotonic() + RUN_DEADLINE_S
    problem = ""
    stdout_lines: list[bytes] = []

    def kill() -> None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def browser_failed() -> str | None:
        failed, _ = browser_state(blog)
        return failed

    if stdio_session:
        try:
            stdout_lines = stdio_session(p, out_q, deadline, browser_failed)
        except Exception as e:  # noqa: BLE001 - recorded as the run's failure
            problem = str(e)
        try:
            p.stdin.close()
        except OSError:
            pass
    # The exit is taken by a thread blocked in waitpid, so the time is exact;
    # this thread only watches the deadline and the browser.
    exited = threading.Event()
    end_ns = [0]

    def reap() -> None:
        p.wait()
        end_ns[0] = time.perf_counter_ns()
        exited.set()

    threading.Thread(target=reap, daemon=True).start()
    failed_at = None
    while not exited.wait(0.02):
        now = time.monotonic()
        if now > deadline:
            kill()
            problem = problem or f"no exit within {RUN_DEADLINE_S:.0f} s (killed)"
            break
        if failed_at is None and browser_failed():
            failed_at = now
        if failed_at is not None and now - failed_at > BROWSER_GRACE_S:
            kill()
            break
    exited.wait()
    ms = (end_ns[0] - t0) / 1e6
    time.sleep(0.01)  # let the readers drain
    while True:
        try:
            line = out_q.get_nowait()
        except queue.Empty:
            break
        if line is not None:
            stdout_lines.append(line)
    err = b"".join(err_chunks).decode(errors="replace")
    bf = browser_failed()
    if bf:
        return False, ms, f"the browser step failed: {tail(bf)}"
    if problem:
        return False, ms, f"{problem}; stderr: {tail(err)}" if err.strip() else problem
    if p.returncode != 0:
        return False, ms, f"exit {p.returncode}: {tail(err)}"
    return True, ms, ""


def mcp_remote_session(p, out_q, deadline, browser_failed) -> list[bytes]:
    """Speaks the workload as JSON-RPC on a stdio proxy's stdin (mcp-remote,
    `mcp-oauth proxy`), one message at a time."""

    def send(msg: dict) -> None:
        p.stdin.write((json.dumps(msg) + "\n").encode())
        p.stdin.flush()

    def answer(i: int) -> dict:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"no answer to request {i} within {RUN_DEADLINE_S:.0f} s")
            if browser_failed():
                raise RuntimeError("browser failed")
            try:
                line = out_q.get(timeout=min(left, 0.05))
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"the proxy closed its stdout before answering request {i}")
            try:
                m = json.loads(line)
            except ValueError:
                continue
            if m.get("id") == i:
                if "error" in m:
                    raise RuntimeError(f"request {i} failed: {json.dumps(m['error'])}")
                return m["result"]

    send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "bench-peers-stdio", "version": "1.0.0"}}})
    answer(1)
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    if not any(t.get("name") == "echo" for t in answer(2).get("tools", [])):
        raise RuntimeError("tools/list has no echo")
    send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "bench"}}})
    out = answer(3)
    if (out.get("content") or [{}])[0].get("text") != "bench":
        raise RuntimeError(f"echo answered {json.dumps(out)}")
    return []


# -- the clients -----------------------------------------------------------


@dataclass
class Env:
    root: Path
    node: Path
    node_dir: Path
    python: Path
    cli: Path
    headless: Path
    browser: Path
    seed_cache: Path
    work: Path
    drop_prompt: bool = True


@dataclass
class ClientKind:
    key: str
    label: str
    what: str
    situations: dict[str, str]  # situation -> what the timed process does
    na: dict[str, str] = field(default_factory=dict)  # situation -> why not
    mcp_oauth_store: bool = False
    store_of: str | None = None  # the token situation reuses another client's warm store

    def command(self, e: Env, situation: str, url: str, store: Path) -> tuple[list[str], dict, object]:
        env = dict(os.environ)
        env.update(BROWSER=str(e.browser), BENCH_BROWSER=str(e.browser), BENCH_HEADLESS=str(e.headless),
                   BENCH_DROP_PROMPT="1" if e.drop_prompt else "0")
        env["PATH"] = f"{e.node.parent}:{env.get('PATH', '')}"  # anything spawning `node` gets Node 22
        mode = "token" if situation == "token" else "workload"
        n = str(e.node)
        if self.key == "cli":
            env["MCP_OAUTH_HOME"] = str(store)
            return [str(e.cli), "token", url], env, None
        if self.key == "mcp-oauth-node":
            return [n, str(e.node_dir / "mcp-oauth-node.mjs"), mode, url, str(store)], env, None
        if self.key == "mcp-oauth-python":
            return [str(e.python), str(e.root / "bench/peers/mcp_oauth_py.py"), mode, url, str(store)], env, None
        if self.key == "ts-sdk":
            return [n, str(e.node_dir / "ts-sdk.mjs"), mode, url, str(store)], env, None
        if self.key == "ts-sdk-engine":
            return [n, str(e.node_dir / "ts-sdk.mjs"), mode, url, str(store), "--load-engine"], env, None
        if self.key == "py-sdk":
            return [str(e.python), str(e.root / "bench/peers/py_sdk.py"), mode, url, str(store)], env, None
        if self.key == "py-sdk-wasmtime":
            return [str(e.python), str(e.root / "bench/peers/py_sdk.py"), mode, url, str(store), "--import-wasmtime"], env, None
        if self.key == "mcp-oauth-proxy":
            env["MCP_OAUTH_HOME"] = str(store)
            return [str(e.cli), "proxy", url], env, mcp_remote_session
        if self.key == "mcp-remote":
            env["MCP_REMOTE_CONFIG_DIR"] = str(store)
            proxy = e.node_dir / "node_modules/mcp-remote/dist/proxy.js"
            return [n, str(proxy), url, "--host", "127.0.0.1", "--callback-path", "/callback"], env, mcp_remote_session
        raise KeyError(self.key)


def clients() -> list[ClientKind]:
    no_cli_workload = ("the CLI has no MCP client command (`login` authorizes and sends one probe, `token` prints a token); "
                       "the project's MCP workload rows are the npm and Python packages")
    return [
        ClientKind("cli", "mcp-oauth CLI", "target/release/mcp-oauth (copied at the start of the run) token <url>, MCP_OAUTH_HOME: the npm package's warm store (one store format for the CLI and the packages)",
                   {"token": "mcp-oauth token <url>"},
                   na={"cold": no_cli_workload, "warm": no_cli_workload, "expired": no_cli_workload},
                   mcp_oauth_store=True, store_of="mcp-oauth-node"),
        ClientKind("mcp-oauth-node", "mcp-oauth npm + TS SDK Client",
                   "the project's npm package; the TS SDK's StreamableHTTPClientTransport with fetch: auth.fetch",
                   {s: "workload" for s in SITUATIONS[:3]} | {"token": "McpOAuth.open + auth.token() (silent)"},
                   mcp_oauth_store=True),
        ClientKind("mcp-oauth-python", "mcp-oauth wheel + Python SDK",
                   "the project's wheel; the Python SDK's streamable_http_client with httpx2.AsyncClient(auth=McpOAuth(url))",
                   {s: "workload" for s in SITUATIONS[:3]} | {"token": "McpOAuth(url, interactive=False).token()"},
                   mcp_oauth_store=True),
        ClientKind("ts-sdk", "TS SDK OAuthClientProvider",
                   "@modelcontextprotocol/sdk's own OAuth: a file-backed OAuthClientProvider (tokens, client, verifier, discovery state) as the transport's authProvider",
                   {s: "workload" for s in SITUATIONS[:3]} | {"token": "the SDK's auth(provider, {serverUrl}) (refreshes whenever a refresh token is stored)"}),
        ClientKind("py-sdk", "Python SDK OAuthClientProvider",
                   "mcp's own OAuth: OAuthClientProvider with a file-backed TokenStorage as the httpx2 client's auth",
                   {s: "workload" for s in SITUATIONS[:3]} | {"token": "the provider's httpx2 auth flow up to the request it would send (the SDK has no token call; nothing is checked or sent)"}),
        ClientKind("ts-sdk-engine", "TS SDK OAuthClientProvider + load the npm engine (floor)",
                   "the ts-sdk row, also loading the npm package's engine (the jco glue imported, the core module "
                   "compiled and instantiated, beside the SDK's own start) and using nothing of it: what any package "
                   "running a jco-transpiled component pays on top of the SDK's own OAuth (the floor of the npm rows "
                   "that need the engine: cold and expired)",
                   {s: "workload" for s in SITUATIONS[:3]},
                   na={"token": "a floor for the workload rows only"}),
        ClientKind("py-sdk-wasmtime", "Python SDK OAuthClientProvider + import wasmtime-py (floor)",
                   "the py-sdk row, first importing wasmtime and wasmtime.component and using nothing of them: what any "
                   "package running a wasmtime-py component in-process pays on top of the SDK's own OAuth, before its "
                   "engine does anything (the floor of the wheel's cold and expired rows; its warm row loads no engine)",
                   {s: "workload" for s in SITUATIONS[:3]},
                   na={"token": "a floor for the workload rows only"}),
        ClientKind("mcp-oauth-proxy", "mcp-oauth proxy (stdio proxy)",
                   "target/release/mcp-oauth proxy <url>, JSON-RPC on its stdin, then stdin closed; MCP_OAUTH_HOME per store",
                   {s: "workload" for s in SITUATIONS[:3]},
                   na={"token": "a stdio proxy: the CLI row is its token-only mode"},
                   mcp_oauth_store=True),
        ClientKind("mcp-remote", "mcp-remote (stdio proxy)",
                   "mcp-remote <url> --host 127.0.0.1 --callback-path /callback, JSON-RPC on its stdin, then stdin closed; MCP_REMOTE_CONFIG_DIR per store",
                   {s: "workload" for s in SITUATIONS[:3]},
                   na={"token": "no token-only mode: mcp-remote is a stdio proxy (its mcp-remote-client also connects and lists tools)"}),
    ]


# -- the benchmark -----------------------------------------------------------


@dataclass
class Cell:
    runs: list[Outcome] = field(default_factory=list)
    skipped: str = ""

    def ok(self) -> list[Outcome]:
        return [r for r in self.runs if r.ok]

    def failures(self) -> list[Outcome]:
        return [r for r in self.runs if not r.ok]


class Bench:
    def __init__(self, e: Env, a: Demo, b: Demo, kinds: list[ClientKind], verbose: bool) -> None:
        self.e, self.a, self.b, self.kinds, self.verbose = e, a, b, kinds, verbose
        self.cells = {(k.key, s): Cell() for k in kinds for s in SITUATIONS}
        self.prompt_senders: set[str] = set()
        self.prepared: dict[tuple[int, str], tuple[Path, float, Outcome]] = {}

    def fresh_store(self, k: ClientKind, path: Path) -> Path:
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, mode=0o700)
        if k.mcp_oauth_store:
            # The compiled-engine cache is machine state, not login state: a
            # user's first login to a server finds it in place (see the
            # first-run note for the cost without it).
            shutil.copytree(self.e.seed_cache, path / "cache")
        return path

    def once(self, k: ClientKind, situation: str, demo: Demo, store: Path, tag: str) -> Outcome:
        blog = self.e.work / f"browser-{tag}.log"
        blog.unlink(missing_ok=True)
        argv, env, session = k.command(self.e, situation, demo.url, store)
        env["BENCH_BROWSER_LOG"] = str(blog)
        before = len(demo.log())
        ok, ms, err = run_process(argv, env, blog, session)
        reqs = demo.log()[before:]
        _, prompt = browser_state(blog)
        if prompt:
            self.prompt_senders.add(k.key)
        return Outcome(ok, ms, reqs, err, prompt)

    def record(self, k: ClientKind, situation: str, out: Outcome | None, counted: bool) -> None:
        cell = self.cells[(k.key, situation)]
        if out is None or not counted:
            return
        cell.runs.append(out)
        if self.verbose:
            status = "ok" if out.ok else f"FAILED: {out.error}"
            print(f"  {k.key:17} {situation:8} {out.ms:8.1f} ms {len(out.requests):3} req  {status}", file=sys.stderr)

    def blocked(self, k: ClientKind, situation: str) -> bool:
        """Skip a cell after three failures in a row: the reason is recorded."""
        runs = self.cells[(k.key, situation)].runs
        return len(runs) >= 3 and not any(r.ok for r in runs[-3:])

    def round(self, i: int, counted: bool) -> None:
        rd = self.e.work / f"round-{i}"
        stores: dict[str, Path] = {}
        cold_ok: dict[str, bool] = {}
        # cold, then warm, then token on the same store, client by client
        for situation in ("cold", "warm", "token"):
            for k in self.kinds:
                if situation not in k.situations or self.blocked(k, situation):
                    continue
                if situation == "cold":
                    stores[k.key] = self.fresh_store(k, rd / k.key / "a")
                    out = self.once(k, "cold", self.a, stores[k.key], f"{i}-{k.key}-cold")
                    cold_ok[k.key] = out.ok
                    self.record(k, "cold", out, counted)
                    continue
                src = k.store_of or k.key
                if not cold_ok.get(src):
                    self.note_dependency(k, situation, src, counted)
                    continue
                out = self.once(k, situation, self.a, stores[src], f"{i}-{k.key}-{situation}")
                self.record(k, situation, out, counted)
        # expired: the store this client authorized into against the
        # short-lived server before the rounds began, once its access token
        # is past its lifetime on the server's clock
        for k in self.kinds:
            if "expired" not in k.situations or self.blocked(k, "expired"):
                continue
            prep = self.prepared.get((i, k.key))
            if prep is None:
                continue
            store, issued, outcome = prep
            if not outcome.ok:
                if counted:
                    self.cells[(k.key, "expired")].runs.append(Outcome(
                        False, outcome.ms, [],
                        f"preparing the store (a cold run against the --access-ttl {EXPIRED_TTL_S} server) failed: {outcome.error}"))
                continue
            wait = issued + EXPIRED_TTL_S + 1.0 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            out = self.once(k, "expired", self.b, store, f"{i}-{k.key}-expired")
            self.record(k, "expired", out, counted)
        shutil.rmtree(rd, ignore_errors=True)
        shutil.rmtree(self.e.work / f"expired-{i}", ignore_errors=True)

    def prepare_expired(self, rounds: int, say) -> None:
        """A cold run of every client against the short-lived server for every
        round, untimed, before the rounds: by the time a round reaches its
        expired runs the access tokens have expired on the server's clock."""
        self.prepared: dict[tuple[int, str], tuple[Path, float, Outcome]] = {}
        for i in range(rounds):
            say(f"  preparing the expired stores of round {i + 1}/{rounds}")
            for k in self.kinds:
                if "expired" not in k.situations:
                    continue
                store = self.fresh_store(k, self.e.work / f"expired-{i}" / k.key)
                out = self.once(k, "cold", self.b, store, f"{i}-{k.key}-expired-prep")
                self.prepared[(i, k.key)] = (store, time.monotonic(), out)  # issued before this

    def note_dependency(self, k: ClientKind, situation: str, src: str, counted: bool) -> None:
        if counted:
            self.cells[(k.key, situation)].runs.append(
                Outcome(False, 0.0, [], f"no store: the cold run of {src} in this round failed"))


def compat_check(e: Env, a: Demo, kinds: list[ClientKind]) -> dict[str, str]:
    """One cold run of each client with the demo AS as it is (no `prompt` dropped)."""
    out: dict[str, str] = {}
    e2 = Env(**{**e.__dict__, "drop_prompt": False})
    b = Bench(e2, a, a, kinds, False)
    for k in kinds:
        if "cold" not in k.situations:
            continue
        store = b.fresh_store(k, e.work / "compat" / k.key)
        r = b.once(k, "cold", a, store, f"compat-{k.key}")
        if r.ok:
            out[k.key] = "ok"
            continue
        why = r.error
        opened = [l[5:] for l in (e.work / f"browser-compat-{k.key}.log").read_text().splitlines() if l.startswith("open ")] \
            if (e.work / f"browser-compat-{k.key}.log").exists() else []
        if opened:
            # What the authorization server answered the browser, and the
            # parameters that matter, instead of the whole URL.
            url = opened[0]
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
            try:
                with urllib.request.urlopen(url, timeout=10) as resp:
                    answer = f"HTTP {resp.status}"
            except urllib.error.HTTPError as he:
                answer = f"HTTP {he.code} {he.read().decode(errors='replace').strip()!r}"
            except OSError as oe:
                answer = str(oe)
            shown = ", ".join(f"{p}={q[p][0]!r}" for p in ("scope", "prompt") if p in q)
            why = f"the authorization request ({shown}) got {answer} from the demo AS, so the browser could not reach the callback"
        out[k.key] = f"FAILED: {why}"
    shutil.rmtree(e.work / "compat", ignore_errors=True)
    return out


def first_run(e: Env, a: Demo, runs: int) -> list[Outcome]:
    """The Python package's cold run with no compiled-engine cache at all."""
    k = next(k for k in clients() if k.key == "mcp-oauth-python")
    b = Bench(e, a, a, [k], False)
    res = []
    for i in range(runs):
        store = e.work / "first-run" / str(i)
        shutil.rmtree(store, ignore_errors=True)
        store.mkdir(parents=True)
        res.append(b.once(k, "cold", a, store, f"first-{i}"))
    shutil.rmtree(e.work / "first-run", ignore_errors=True)
    return res


def floor(e: Env, url: str, runs: int) -> list[tuple[str, list[Outcome]]]:
    """What a fresh process costs before any OAuth or MCP: the runtimes and
    the libraries the rows load, interleaved like the rounds."""
    home = e.work / "floor-home"
    shutil.copytree(e.seed_cache, home / "cache", dirs_exist_ok=True)
    py, node = str(e.python), str(e.node)
    sdk_imports = ("import '@modelcontextprotocol/sdk/client/index.js'; "
                   "import '@modelcontextprotocol/sdk/client/streamableHttp.js';")
    cmds = [
        ("node -e 0 (Node 22)", [node, "-e", "0"]),
        ("node: import the TS SDK Client and transport", [node, "--input-type=module", "-e", sdk_imports]),
        ("node: the same + import mcp-oauth and McpOAuth.open (no request)",
         [node, "--input-type=module", "-e",
          sdk_imports + " const { McpOAuth } = await import('mcp-oauth'); "
          f"await McpOAuth.open({json.dumps(url)}, {{ home: {json.dumps(str(home))}, interactive: false }});"]),
        ("python -c pass (the venv's Python)", [py, "-c", "pass"]),
        ("python: import the MCP SDK client, streamable HTTP and httpx2",
         [py, "-c", "import httpx2, mcp, mcp.client.streamable_http, mcp.client.auth"]),
        ("python: import mcp_oauth, McpOAuth(url) and its engine (status(): the compiled engine loaded, no request)",
         [py, "-c", "import sys; from mcp_oauth import McpOAuth; McpOAuth(sys.argv[1], home=sys.argv[2]).status()", url, str(home)]),
    ]
    res: dict[str, list[Outcome]] = {label: [] for label, _ in cmds}
    dummy = e.work / "floor-browser.log"
    for _ in range(runs):
        for label, argv in cmds:
            env = dict(os.environ)
            ok, ms, err = subprocess_in(e.node_dir, lambda: run_process(argv, env, dummy))
            res[label].append(Outcome(ok, ms, [], err))
    return [(label, res[label]) for label, _ in cmds]


def subprocess_in(cwd: Path, f):
    """Runs f with cwd as the working directory (Node resolves `-e` imports from it)."""
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return f()
    finally:
        os.chdir(old)


# -- the report --------------------------------------------------------------


def fmt_ms(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}"


def req_text(counts: list[int]) -> str:
    lo, hi = min(counts), max(counts)
    med = statistics.median(counts)
    return f"{med:g}" if lo == hi else f"{med:g} ({lo}–{hi})"


RATIO_PAIRS = [("mcp-oauth-node", "ts-sdk"), ("ts-sdk-engine", "ts-sdk"), ("mcp-oauth-node", "ts-sdk-engine"),
               ("mcp-oauth-python", "py-sdk"), ("py-sdk-wasmtime", "py-sdk"), ("mcp-oauth-python", "py-sdk-wasmtime")]


def ratio_lines(bench: Bench, kinds: list[ClientKind]) -> list[str]:
    """One line per pair of rows both run: the ratio per workload situation."""
    label = {k.key: k.label for k in kinds}
    out = []
    for ours, theirs in RATIO_PAIRS:
        if ours not in label or theirs not in label:
            continue
        cells = []
        for s in SITUATIONS[:3]:
            a, b = bench.cells[(ours, s)], bench.cells[(theirs, s)]
            if not a.ok() or not b.ok():
                continue
            text = f"{s} {statistics.median(r.ms for r in a.ok()) / statistics.median(r.ms for r in b.ok()):.2f}"
            if len(a.runs) == len(b.runs) and not a.failures() and not b.failures():
                text += f" ({statistics.median(x.ms / y.ms for x, y in zip(a.runs, b.runs)):.2f})"
            cells.append(text)
        if cells:
            out.append(f"- {label[ours]} / {label[theirs]}: " + " · ".join(cells))
    return out


def report(bench: Bench, kinds: list[ClientKind], args, meta: dict, compat: dict[str, str], first: list[Outcome],
           floors: list[tuple[str, list[Outcome]]]) -> str:
    notes: list[str] = []

    def note(text: str) -> str:
        if text not in notes:
            notes.append(text)
        return f"[{notes.index(text) + 1}]"

    lines = []
    lines.append("# MCP clients against `mcp-oauth demo --serve`")
    lines.append("")
    lines.append(f"Command: `{meta['command']}` · {meta['date']} · {args.runs} counted runs per cell after "
                 f"{args.warmup} warm-up round{'s' if args.warmup != 1 else ''}, interleaved (each round runs every client once per situation) · "
                 f"wall time of each fresh process (monotonic clock, from spawn to exit) · requests: what the demo servers "
                 f"logged during that process (AS + MCP server, incl. the browser's GET /authorize).")
    lines.append("")
    lines.append(f"Machine: {meta['machine']}; load average (1 min) {meta['load']}. Versions: {meta['versions']}.")
    lines.append("")
    lines.append("Each cell: min / **median** / max ms · requests per flow (median, range if it varied).")
    lines.append("")
    lines.append("| client | " + " | ".join(SITUATIONS) + " |")
    lines.append("|---|" + "---|" * len(SITUATIONS))
    for k in kinds:
        row = [k.label]
        for s in SITUATIONS:
            if s not in k.situations:
                row.append("n/a " + note(f"{k.label}: {k.na.get(s, 'not applicable')}"))
                continue
            cell = bench.cells[(k.key, s)]
            ok, bad = cell.ok(), cell.failures()
            text = ""
            if ok:
                ms = sorted(r.ms for r in ok)
                text = (f"{fmt_ms(ms[0])} / **{fmt_ms(statistics.median(ms))}** / {fmt_ms(ms[-1])} ms · "
                        f"{req_text([len(r.requests) for r in ok])} req")
                if s != "cold" and any("GET /authorize" in r.requests for r in ok):
                    text += " · browser " + note(f"{k.label}, {s}: went through the browser again (GET /authorize): a new authorization, not a refresh")
            if bad:
                reasons = sorted({r.error for r in bad})
                refs = " ".join(note(f"{k.label}, {s}: {r}") for r in reasons)
                text += ("; " if text else "") + f"**failed {len(bad)}/{len(cell.runs)}** {refs}"
            if not cell.runs:
                text = "no runs"
            row.append(text)
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    if notes:
        for i, n in enumerate(notes, 1):
            lines.append(f"[{i}] {n}  ")
        lines.append("")

    ratios = ratio_lines(bench, kinds)
    if ratios:
        lines.append("## Against the SDK's own OAuth")
        lines.append("")
        lines.append("Each row's median over the SDK row's median (below 1: faster), and in brackets the median of the "
                     "per-round ratios (the runs of one round are neighbours in time, so the machine's drift cancels):")
        lines.append("")
        lines.extend(ratios)
        lines.append("")

    lines.append("## What each row runs")
    lines.append("")
    lines.append(f"Workload (cold, warm, expired): {WORKLOAD}. Situations:")
    for s in SITUATIONS:
        lines.append(f"- {SITUATION_TEXT[s]}")
    lines.append("")
    for k in kinds:
        lines.append(f"- **{k.label}**: {k.what}. token: {k.situations.get('token', 'n/a')}.")
    lines.append("")
    lines.append("The browser is `target/release/mcp-oauth-headless-browser` (the demo AS approves at once and redirects to the "
                 "client's loopback callback), through `bench/peers/browser`, given to each client the way it takes one "
                 "(`BROWSER` for mcp-remote and the mcp-oauth packages, a redirect handler that spawns it in the SDK programs).")
    lines.append("")

    lines.append("## Against the demo authorization server as it is")
    lines.append("")
    lines.append("One cold run of each client with the authorization URL passed to the browser unchanged:")
    lines.append("")
    for k in kinds:
        if k.key in compat:
            lines.append(f"- {k.label}: {compat[k.key]}")
    lines.append("")
    if bench.prompt_senders:
        who = ", ".join(k.label for k in kinds if k.key in bench.prompt_senders)
        lines.append(f"Sent `prompt=consent` (with `offline_access`, which the demo AS lists in `scopes_supported`): {who}. "
                     "The demo AS refuses any `prompt` (HTTP 400 `invalid authorization request: no forced prompt`) where a real "
                     "AS shows its consent page; for the table the bench's browser drops the parameter before following the URL, "
                     "which stands in for the user clicking Allow and changes nothing the client does.")
        lines.append("")

    if first:
        ok = [r for r in first if r.ok]
        lines.append("## First run ever (no compiled-engine cache)")
        lines.append("")
        lines.append("The mcp-oauth stores in the table start with the compiled-engine cache (`<home>/cache`) in place, as on any "
                     "machine that ran mcp-oauth before; the Node package has no such cache (jco JavaScript). The Python package's "
                     "cold run with nothing in its home (its engine from the wheel, compiled ahead of time for this platform; on a "
                     "platform without one, Winch, wasmtime's baseline compiler, and the optimized engine cached in the background):")
        lines.append("")
        if ok:
            ms = sorted(r.ms for r in ok)
            lines.append(f"- mcp-oauth wheel + Python SDK, cold, empty home: {fmt_ms(ms[0])} / **{fmt_ms(statistics.median(ms))}** / "
                         f"{fmt_ms(ms[-1])} ms over {len(ok)} runs · {req_text([len(r.requests) for r in ok])} req")
        for r in first:
            if not r.ok:
                lines.append(f"- failed: {r.error}")
        lines.append("")

    if floors:
        lines.append("## The floor: a fresh process before any OAuth or MCP")
        lines.append("")
        lines.append("Measured the same way, interleaved, to read the rows against:")
        lines.append("")
        for label, outs in floors:
            ok = sorted(r.ms for r in outs if r.ok)
            bad = [r for r in outs if not r.ok]
            text = f"{fmt_ms(ok[0])} / **{fmt_ms(statistics.median(ok))}** / {fmt_ms(ok[-1])} ms" if ok else ""
            if bad:
                text += ("; " if text else "") + f"failed {len(bad)}/{len(outs)}: {bad[0].error}"
            lines.append(f"- {label}: {text}")
        lines.append("")

    lines.append("## Requests per flow")
    lines.append("")
    lines.append("The requests of each cell's first successful counted run, in the order the servers saw them:")
    lines.append("")
    for k in kinds:
        for s in SITUATIONS:
            ok = bench.cells[(k.key, s)].ok()
            if ok:
                lines.append(f"- {k.label}, {s} ({len(ok[0].requests)}): {', '.join(ok[0].requests) or '(none)'}")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--node", type=Path, required=True)
    ap.add_argument("--node-dir", type=Path, required=True)
    ap.add_argument("--python", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--versions", default="")
    ap.add_argument("--command", default="scripts/bench-peers")
    ap.add_argument("--only", default="", help="comma-separated client keys (cli, mcp-oauth-node, mcp-oauth-python, mcp-oauth-proxy, ts-sdk, ts-sdk-engine, py-sdk, py-sdk-wasmtime, mcp-remote)")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()
    if args.runs < 1 or args.warmup < 0:
        ap.error("--runs must be at least 1 and --warmup at least 0")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = args.root.resolve()
    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    kinds = clients()
    if args.only:
        want = args.only.split(",")
        kinds = [k for k in kinds if k.key in want]
        if any(k.store_of and k.store_of not in want for k in kinds):
            ap.error("the cli row uses the mcp-oauth-node row's store: add mcp-oauth-node")
    # The binaries as they are now, for the whole run: a rebuild during the
    # run would change the compiled-engine cache key and measure compiles.
    (work / "bin").mkdir()
    for name in ("mcp-oauth", "mcp-oauth-headless-browser"):
        shutil.copy2(root / "target/release" / name, work / "bin" / name)
    e = Env(root=root, node=args.node, node_dir=args.node_dir, python=args.python,
            cli=work / "bin/mcp-oauth", headless=work / "bin/mcp-oauth-headless-browser",
            browser=root / "bench/peers/browser", seed_cache=work / "seed/cache", work=work)
    servers: list[Demo] = []
    try:
        a = Demo(e.cli, work, "demo-a", [])
        servers.append(a)
        b = Demo(e.cli, work, "demo-b", ["--access-ttl", str(EXPIRED_TTL_S)])
        servers.append(b)
        say = (lambda *x: None) if args.quiet else (lambda *x: print(*x, file=sys.stderr, flush=True))
        say(f"demo servers: {a.url} (access tokens 3600 s, pid {a.proc.pid}), {b.url} ({EXPIRED_TTL_S} s, pid {b.proc.pid})")

        # The compiled-engine cache every mcp-oauth store starts with: the
        # CLI's and the Python package's artifacts.
        seed = work / "seed"
        senv = dict(os.environ, MCP_OAUTH_HOME=str(seed))
        subprocess.run([str(e.cli), "status", a.url], env=senv, stdout=subprocess.DEVNULL, timeout=120, check=True)
        # status() needs the engine (McpOAuth(...) alone loads none).
        subprocess.run([str(e.python), "-c", "import sys; from mcp_oauth import McpOAuth; McpOAuth(sys.argv[1], home=sys.argv[2]).status()",
                        a.url, str(seed)], timeout=120, check=True)
        # A host that carries its engine compiled ahead of time caches
        # nothing: the stores then start with an empty (private) cache dir.
        e.seed_cache.mkdir(mode=0o700, parents=True, exist_ok=True)

        say("checking each client against the demo AS as it is ...")
        compat = compat_check(e, a, kinds)
        for k, v in compat.items():
            say(f"  {k}: {v}")
        bench = Bench(e, a, b, kinds, not args.quiet)
        load_start = os.getloadavg()[0]
        total = args.warmup + args.runs
        say(f"authorizing every client against the {EXPIRED_TTL_S} s server for each round (untimed) ...")
        bench.prepare_expired(total, say)
        for i in range(total):
            counted = i >= args.warmup
            say(f"round {i + 1}/{total}{'' if counted else ' (warm-up, not counted)'}")
            bench.round(i, counted)
        first = first_run(e, a, min(args.runs, 5)) if any(k.key == "mcp-oauth-python" for k in kinds) else []
        say("the floor: bare runtimes and imports ...")
        floors = floor(e, a.url, args.runs)

        cpu = ""
        try:
            cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
        except (OSError, StopIteration):
            pass
        meta = {
            "command": args.command,
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs{', ' + cpu if cpu else ''}",
            "versions": args.versions,
            "load": f"{load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end",
        }
        text = report(bench, kinds, args, meta, compat, first, floors)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(text)
        print(f"(written to {args.out})", file=sys.stderr)
        return 0
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
