"""One Python replica of a fleet test: `fleet_replica.py URL SECONDS`.

The store, user and secrets come from the environment (MCP_OAUTH_STORE,
MCP_OAUTH_USER, MCP_OAUTH_STORE_KEY_FILE, MCP_OAUTH_SECRETS, ...). Asks for
a token the silent way every 50 ms for SECONDS (a sign-in that would be
needed fails, no browser ever opens), then prints one JSON line:

    {"host":"python","calls":N,"ok":N,"errors":N,"first_errors":[...],
     "failures":[{"at","ms"}...],"last_ok_at":T}  (times: Unix seconds)

Exit 0 after the run, 1 when the replica could not start."""

from __future__ import annotations

import json
import sys
import time

PERIOD_S = 0.05


def _no_browser(url: str) -> None:
    raise RuntimeError("a replica never opens a browser")


def main(argv: list) -> int:
    if len(argv) != 3:
        print("usage: fleet_replica.py URL SECONDS", file=sys.stderr)
        return 1
    url = argv[1]
    try:
        seconds = float(argv[2])
        from mcp_oauth import McpOAuth

        auth = McpOAuth(url, open_browser=_no_browser, interactive=False, paste=False)
    except Exception as e:  # the message names what is wrong, never a secret
        print(f"fleet_replica: could not start: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    calls = ok = 0
    errors: list = []
    # When each failure happened and how long it took, and the last success:
    # the fleet test's outage checks them.
    failures: list = []
    last_ok_at = None
    began = time.monotonic()
    end = began + seconds
    try:
        while True:
            started = time.monotonic()
            if started >= end:
                break
            calls += 1
            try:
                auth.token()
                ok += 1
                last_ok_at = round(time.time(), 3)
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}"[:300])
                if len(failures) < 200:
                    at = time.time() - (time.monotonic() - started)
                    failures.append({"at": round(at, 3), "ms": round((time.monotonic() - started) * 1000)})
            time.sleep(max(0.0, PERIOD_S - (time.monotonic() - started)))
    finally:
        auth.close()
    report = {
        "host": "python",
        "calls": calls,
        "ok": ok,
        "errors": len(errors),
        "first_errors": errors[:3],
        "failures": failures,
        "last_ok_at": last_ok_at,
    }
    print(json.dumps(report, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
