"""A bounded load test of `newsletter serve`: 2,000 requests, 50 at a time, over loopback.

Run by hand from the project folder:  python benchmarks/web_load.py [--workers 2] [--keep-alive]

It prepares a project in a temporary folder with the quickstart's sample send (`newsletter run
--as-of 2024-07-16` through the built-in capture server: one archived issue, the sample
readers' messages in the outbox, the local unsubscribe key), starts `newsletter serve` as a
subprocess on 127.0.0.1 (tests/webserve.py), then fires the requests from 50 client threads
over an even mix of / (the index), /feed.atom, the issue's page, one of its chart PNGs, the
signup form and GET /u/<token> (a real reader's link from the outbox: the confirmation page). Each request is
a new connection, as a reverse proxy without upstream keep-alive makes them (--keep-alive: one
connection per client thread). Every request must be answered 200 with its whole body, or the
script fails. It prints p50/p99/max latency, requests per second, the server's peak RSS (VmHWM
of each of its processes) and the load average: the clients share the two cores with it.
"""

from __future__ import annotations

import argparse
import email
import http.client
import mailbox
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email import policy
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.webserve import serve_process  # noqa: E402

AS_OF = "2024-07-16"


def prepare(root: Path) -> tuple[Path, list[str]]:
    """The sample send in `root`; its config file and the paths to request."""
    config = root / "config.yaml"
    config.write_text(
        f"templates:\n  dir: {REPO / 'templates'}\npaths:\n  var_dir: {root / 'var'}\n"
    )
    command = [sys.executable, "-m", "newsletter", "run", "--config", str(config)]
    subprocess.run([*command, "--as-of", AS_OF, "--quiet"], check=True, capture_output=True)
    outbox = mailbox.Maildir(root / "var" / "outbox", create=False)
    message = email.message_from_bytes(
        outbox.get_bytes(next(outbox.iterkeys())), policy=policy.default
    )
    found = re.search(r"<https://[^>]+(/u/[^>]+)>", str(message["List-Unsubscribe"]))
    assert found, "no unsubscribe link in the sample message"
    chart = sorted((root / "var" / "archive" / AS_OF).glob("*.png"))[0].name
    issue = f"/issues/{AS_OF}/"
    return config, ["/", "/feed.atom", issue, f"{issue}{chart}", found.group(1), "/signup"]


def fire(
    url: str, paths: list[str], total: int, clients: int, keep_alive: bool
) -> tuple[list[float], list[str]]:
    """`total` GETs over `paths` from `clients` threads; each request's seconds, and failures."""
    parts = urlsplit(url)
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def client() -> None:
        connection = None
        for number in counter:  # shared: the threads take the next request number in turn
            path = paths[number % len(paths)]
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
                connection.request("GET", path)
                reply = connection.getresponse()
                body = reply.read()
                ok = reply.status == 200 and len(body) == int(
                    reply.getheader("Content-Length", "-1")
                )
                outcome = None if ok else f"{path}: {reply.status}, {len(body)} bytes"
            except (OSError, http.client.HTTPException) as err:
                outcome = f"{path}: {type(err).__name__}: {err}"
            elapsed = time.perf_counter() - started
            if connection is not None and (not keep_alive or outcome is not None):
                connection.close()
                connection = None
            with lock:
                latencies.append(elapsed)
                if outcome:
                    failures.append(outcome)
        if connection is not None:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failures


def peak_rss_mb(pid: int) -> list[float]:
    """VmHWM of `pid` and of each of its worker processes, in MB (the parent's first)."""
    workers = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _is_worker_of(entry, pid)
    ]
    peaks = []
    for each in [pid, *workers]:
        try:
            status = Path(f"/proc/{each}/status").read_text()
        except OSError:
            continue
        found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        if found:
            peaks.append(int(found.group(1)) / 1024)
    return peaks


def _is_worker_of(entry: Path, pid: int) -> bool:
    """Whether the process `entry` is a spawned worker of `pid` (not multiprocessing's tracker)."""
    try:
        parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        return parent == pid and b"spawn_main" in (entry / "cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return False


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--keep-alive", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config, paths = prepare(Path(tmp))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with serve_process(config, "--workers", str(args.workers), env=env) as served:
            fire(served.url, paths, len(paths) * 2, len(paths), args.keep_alive)  # warm up
            started = time.perf_counter()
            latencies, failures = fire(
                served.url, paths, args.requests, args.concurrency, args.keep_alive
            )
            wall = time.perf_counter() - started
            peaks = peak_rss_mb(served.process.pid)
            load = os.getloadavg()
    if served.process.returncode != 0:
        raise SystemExit(f"serve exited {served.process.returncode}: {served.err}")
    if failures or len(latencies) != args.requests:
        raise SystemExit(f"{len(failures)} of {args.requests} requests failed: {failures[:5]}")
    connections = "one connection per client" if args.keep_alive else "a new connection per request"
    print(
        f"{args.requests} requests, {args.concurrency} concurrent, {args.workers} worker(s), "
        f"{connections}: all answered 200"
    )
    print(
        f"latency p50 {statistics.median(latencies) * 1000:.1f} ms, p99 "
        f"{percentile(latencies, 0.99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms; "
        f"{args.requests / wall:.0f} requests/s"
    )
    print(
        "server peak RSS (VmHWM): "
        + ", ".join(f"{peak:.0f} MB" for peak in peaks)
        + (f" (parent first, then {len(peaks) - 1} workers)" if len(peaks) > 1 else "")
    )
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1, 5, 15 min; 2 cores shared)")


if __name__ == "__main__":
    main()
