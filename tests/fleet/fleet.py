#!/usr/bin/env python3
"""One sign-in for a fleet: replicas of the CLI, the npm package and the
Python package, each with its own local home, share one Redis store, against
the demo authorization server (which rotates refresh tokens and revokes the
whole family when one is used twice), with access tokens of a few seconds.

    fleet.py --seconds 60 --ttl 4 --replicas 3 [--hosts cli,node,python]
             [--outage] [--json]

Checks, at the end: every call succeeded (with --outage: except while the
store was down, and each failure within its deadline), no refresh token was
used twice, nobody signed in again, and about one refresh per token lifetime
(refreshes <= seconds / (ttl / 2) + 2). Prints a summary; exit 1 on a failed
check. Used by tests/fleet/run (the test) and scripts/bench-fleet (figures).
Everything it starts it stops by PID.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release")
CLI = os.path.join(BIN, "mcp-oauth")
BROWSER = os.path.join(BIN, "mcp-oauth-headless-browser")
REDIS = os.path.join(ROOT, "tests", "redis", "server")
# A call may wait out a lease left by a holder that could not release it
# (the store went down under it): the deadline is the lease and 15 s more.
CALL_DEADLINE_S = 15


def redis_commands(port):
    """Commands the server has run, by name (INFO commandstats)."""
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "INFO", "commandstats"], capture_output=True, text=True, timeout=10
    ).stdout
    counts = {}
    for line in out.splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            calls = rest.split("calls=", 1)[1].split(",", 1)[0]
            counts[name] = int(calls)
    return counts


def difference(after, before):
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}


class Cluster:
    def __init__(self, ttl, lease_ms, http_timeout=None):
        self.http_timeout = http_timeout
        self.tmp = tempfile.mkdtemp(prefix="mcp-oauth-fleet-")
        self.redis_dir = os.path.join(self.tmp, "redis")
        self.port = int(subprocess.check_output([REDIS, "start", self.redis_dir], text=True).strip())
        self.key = os.path.join(self.tmp, "store.key")
        with open(self.key, "w") as f:
            import base64

            f.write(base64.b64encode(os.urandom(32)).decode())
        os.chmod(self.key, 0o600)
        self.demo = subprocess.Popen(
            [CLI, "demo", "--serve", "--port", "0", "--access-ttl", str(ttl)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        first = self.demo.stdout.readline()
        self.url = first.split()[-1]
        self.base = self.url.rsplit("/", 1)[0]
        self.store = f"redis://127.0.0.1:{self.port}/0?lease_ms={lease_ms}"

    def env(self, home):
        e = {k: v for k, v in os.environ.items() if not k.startswith("MCP_OAUTH_")}
        e.pop("DBUS_SESSION_BUS_ADDRESS", None)
        e.update(
            MCP_OAUTH_HOME=home,
            MCP_OAUTH_STORE=self.store,
            MCP_OAUTH_STORE_KEY_FILE=self.key,
            BROWSER=BROWSER,
        )
        if self.http_timeout:
            e["MCP_OAUTH_HTTP_TIMEOUT"] = str(self.http_timeout)
        return e

    def home(self, name):
        p = os.path.join(self.tmp, "homes", name)
        os.makedirs(p, exist_ok=True)
        return p

    def log(self):
        with urllib.request.urlopen(self.base + "/_demo/log", timeout=10) as r:
            return json.load(r)

    def stop_store(self):
        subprocess.run([REDIS, "stop", self.redis_dir], check=True, timeout=20)

    def start_store(self):
        subprocess.check_output([REDIS, "start", self.redis_dir, str(self.port)], text=True, timeout=20)

    def close(self):
        self.demo.send_signal(signal.SIGTERM)
        try:
            self.demo.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.demo.kill()
        subprocess.run([REDIS, "stop", self.redis_dir], timeout=20)
        shutil.rmtree(self.tmp, ignore_errors=True)


def cli_replica(cluster, name, seconds, results, started, users):
    """The CLI as a replica: one `mcp-oauth token` process per call, taking
    the users (sessions) in turn."""
    home = cluster.home(name)
    env = cluster.env(home)
    turn = 0
    calls, ok, errors, first, latencies, failures, spans = 0, 0, 0, [], [], [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t = time.monotonic()
        if users:
            env["MCP_OAUTH_USER"] = users[turn % len(users)]
            turn += 1
        try:
            p = subprocess.run(
                [CLI, "token", cluster.url],
                env=env,
                capture_output=True,
                text=True,
                timeout=CALL_DEADLINE_S,
                stdin=subprocess.DEVNULL,
            )
            good = p.returncode == 0 and p.stdout.strip() != ""
            why = p.stderr.strip()[:300]
        except subprocess.TimeoutExpired:
            good, why = False, f"no answer in {CALL_DEADLINE_S} s"
        ms = (time.monotonic() - t) * 1000
        calls += 1
        latencies.append(ms)
        spans.append((t - started, ms))
        if good:
            ok += 1
        else:
            errors += 1
            failures.append({"at": round(time.time() - ms / 1000, 3), "ms": round(ms)})
            if len(first) < 3:
                first.append(why)
        time.sleep(0.05)
    results.append(
        {
            "host": "cli",
            "name": name,
            "calls": calls,
            "ok": ok,
            "errors": errors,
            "first_errors": first,
            "failures": failures,
            "latencies_ms": latencies,
            "spans": spans,
        }
    )


def package_replica(cluster, host, cmd, name, seconds, results):
    """The npm or Python package as a replica: one long-lived process."""
    env = cluster.env(cluster.home(name))
    p = subprocess.run(
        cmd + [cluster.url, str(seconds)],
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        stdin=subprocess.DEVNULL,
    )
    line = (p.stdout.strip().splitlines() or ["{}"])[-1]
    try:
        r = json.loads(line)
    except ValueError:
        r = {"calls": 0, "ok": 0, "errors": 1, "first_errors": [p.stderr.strip()[:300]]}
    r["host"], r["name"] = host, name
    if p.returncode != 0:
        r.setdefault("first_errors", []).append(f"exit {p.returncode}: {p.stderr.strip()[:300]}")
        r["errors"] = max(1, r.get("errors", 0))
    results.append(r)


def watch_refreshes(cluster, started, stop, seen):
    """Times (s since start) at which token requests reached the AS, polled
    every 100 ms: where the refresh storms are."""
    last = None
    while not stop.is_set():
        try:
            n = sum(1 for r in cluster.log()["requests"] if r.split(" ")[1:2] == ["/token"])
        except OSError:
            n = last
        if last is not None and n is not None and n > last:
            seen.append(time.monotonic() - started)
        last = n
        stop.wait(0.1)


def percentile(values, q):
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--ttl", type=int, default=4)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--hosts", default="cli,node,python")
    ap.add_argument("--lease-ms", type=int, default=35000)
    ap.add_argument(
        "--http-timeout", type=int, default=None, help="MCP_OAUTH_HTTP_TIMEOUT for the replicas (keep it under the lease)"
    )
    ap.add_argument("--sessions", type=int, default=1, help="users signed in, each with its own grant (CLI replicas take them in turn)")
    ap.add_argument("--outage", action="store_true", help="stop the store for 3 s a third of the way in")
    ap.add_argument("--node", default=os.environ.get("FLEET_NODE_REPLICA", ""))
    ap.add_argument("--python", default=os.environ.get("FLEET_PYTHON_REPLICA", ""))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    hosts = [h for h in a.hosts.split(",") if h]

    global CALL_DEADLINE_S
    CALL_DEADLINE_S = a.lease_ms / 1000 + 15
    cluster = Cluster(a.ttl, a.lease_ms, a.http_timeout)
    try:
        users = [f"user-{n + 1}" for n in range(a.sessions)] if a.sessions > 1 else []
        for user in users or [None]:
            env = cluster.env(cluster.home("sign-in"))
            if user:
                env["MCP_OAUTH_USER"] = user
            out = subprocess.run(
                [CLI, "login", cluster.url],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
            if out.returncode != 0:
                print(f"a sign-in failed: {out.stderr.strip()}", file=sys.stderr)
                return 1
        commands_before = redis_commands(cluster.port)
        requests_before = len(cluster.log()["requests"])
        results, threads = [], []
        started = time.monotonic()
        epoch = time.time() - (time.monotonic() - started)
        stop, storms = threading.Event(), []
        watcher = threading.Thread(target=watch_refreshes, args=(cluster, started, stop, storms))
        watcher.start()
        for i in range(a.replicas):
            for h in hosts:
                name = f"{h}-{i + 1}"
                if h == "cli":
                    t = threading.Thread(target=cli_replica, args=(cluster, name, a.seconds, results, started, users))
                else:
                    cmd = (a.node if h == "node" else a.python).split()
                    if not cmd:
                        print(f"no replica command for {h} (--{h})", file=sys.stderr)
                        return 2
                    t = threading.Thread(target=package_replica, args=(cluster, h, cmd, name, a.seconds, results))
                t.start()
                threads.append(t)
        outage = None
        if a.outage:
            time.sleep(a.seconds / 3)
            down = time.monotonic() - started
            cluster.stop_store()
            time.sleep(3)
            cluster.start_store()
            outage = (down, time.monotonic() - started)
        for t in threads:
            t.join()
        stop.set()
        watcher.join()
        elapsed = time.monotonic() - started
        commands = difference(redis_commands(cluster.port), commands_before) if not a.outage else {}
        log = cluster.log()
    finally:
        cluster.close()

    requests = log["requests"]
    authorizations = sum(1 for r in requests if r.split(" ")[1:2] == ["/authorize"])
    token_posts = sum(1 for r in requests if r.split(" ")[1:2] == ["/token"])
    # Each sign-in is one authorization and one code exchange; the rest of
    # the token requests are refreshes. One sign-in per user is expected.
    refreshes = token_posts - authorizations
    sign_ins = authorizations - (a.sessions - 1)
    calls = sum(r.get("calls", 0) for r in results)
    ok = sum(r.get("ok", 0) for r in results)
    cli_lat = [x for r in results for x in r.get("latencies_ms", [])]
    # A call is in a storm when it overlaps 0.3 s before to 0.3 s after a
    # moment token requests reached the AS.
    in_storm = [
        ms
        for r in results
        for (at, ms) in r.get("spans", [])
        if any(at - 0.3 <= s <= at + ms / 1000 + 0.3 for s in storms)
    ]
    as_paths = ("/token", "/authorize", "/register")
    as_during = sum(
        1
        for r in requests[requests_before:]
        if (r.split(" ")[1:2] or [""])[0] in as_paths
        or (r.split(" ")[1:2] or [""])[0].startswith("/.well-known/oauth-authorization-server")
    )
    summary = {
        "seconds": round(elapsed, 1),
        "ttl_s": a.ttl,
        "replicas": len(results),
        "calls": calls,
        "ok": ok,
        "refreshes": refreshes,
        "refreshes_per_s": round(refreshes / elapsed, 2),
        "sign_ins_after_the_first": sign_ins - 1,
        "refresh_token_reuse": log["refresh_token_reuse_detected"],
        "store_commands_per_call": round(sum(commands.values()) / calls, 1) if commands and calls else None,
        # Taking, renewing and releasing leases and fenced writes: SET and scripts.
        "lease_and_write_commands_per_refresh": round(
            sum(v for k, v in commands.items() if k in ("set", "evalsha", "eval")) / refreshes, 1
        )
        if commands and refreshes
        else None,
        "store_commands": commands,
        "as_requests_per_refresh": round(as_during / refreshes, 2) if refreshes else None,
        "cli_token_p50_ms": round(percentile(cli_lat, 0.5), 1),
        "cli_token_p99_ms": round(percentile(cli_lat, 0.99), 1),
        "cli_token_in_storms": len(in_storm),
        "cli_token_in_storms_p50_ms": round(percentile(in_storm, 0.5), 1),
        "cli_token_in_storms_p99_ms": round(percentile(in_storm, 0.99), 1),
        "per_replica": [
            {k: r.get(k) for k in ("name", "calls", "ok", "errors", "first_errors")} for r in results
        ],
    }
    problems = []
    if log["refresh_token_reuse_detected"]:
        problems.append("a refresh token was used twice: the authorization server revoked the family")
    if sign_ins != 1:
        problems.append(f"{sign_ins - 1} sign-ins after the first (per user)")
    bound = a.sessions * (a.seconds / (a.ttl / 2) + 2)
    if refreshes > bound:
        problems.append(f"{refreshes} refreshes: more than one per token lifetime (at most {bound:.0f})")
    if refreshes < 1:
        problems.append("no refresh happened")
    if outage is None:
        if ok != calls:
            problems.append(f"{calls - ok} of {calls} calls failed")
    else:
        down, up = outage
        summary["outage_s"] = [round(down, 1), round(up, 1)]
        for r in results:
            for f in r.get("failures", []):
                at = f["at"] - epoch
                # A lock taken just before the store went down is released by
                # nobody: refreshes wait out its lease after the restart.
                if not (down - 1 <= at <= up + a.lease_ms / 1000 + 1) or f["ms"] > 10_000:
                    problems.append(f"{r['name']}: a failure outside the outage or past its deadline: {f}")
            if r.get("ok", 0) == 0:
                problems.append(f"{r['name']}: no call succeeded")
            if r.get("host") != "cli" and (r.get("last_ok_at") or 0) - epoch < up:
                problems.append(f"{r['name']}: did not recover after the outage")
    summary["problems"] = problems
    if a.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            if k != "per_replica":
                print(f"{k}: {v}")
        for r in summary["per_replica"]:
            print(f"  {r['name']}: {r['ok']}/{r['calls']} ok" + (f", errors: {r['first_errors']}" if r["errors"] else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
