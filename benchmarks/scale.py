"""Scaling out on PostgreSQL: one sender process against three on one issue's list.

Run by hand from the project folder:  python benchmarks/scale.py [--subscribers 10000]

Needs Debian's PostgreSQL binaries (`apt-get install postgresql`): a throwaway server on
127.0.0.1 is started as the tests start theirs (tests/postgres.py). Every trial gets a new
database with the list imported beforehand, then N processes (`python -m tests.sendbuilt`, the
send `newsletter send` runs after its build, on the issue built once here) start at the same
moment and share its ledger, delivering to the discarding SMTP sink of benchmarks/send.py in
its own process. The figure is messages over the wall time from the first start to the last
exit. The load average is printed with each figure: on two cores the sink, PostgreSQL and
the senders share them.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.send import AS_OF, _subscribers, discarding_sink  # noqa: E402
from tests.postgres import binaries, new_database, server  # noqa: E402


def _config(root: Path, port: int, url: str, connections: int) -> Path:
    path = root / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "templates": {"dir": str(REPO / "templates")},
                "subscribers": {"file": None},
                "paths": {"var_dir": str(root / "var")},
                "database": {"url": url},
                "smtp": {"host": "127.0.0.1", "port": port, "timeout_s": 30},
                "delivery": {"connections": connections},
            }
        )
    )
    return path


def _trial(maintenance: str, port: int, listing: Path, built: Path, senders: int) -> float:
    """Messages per second for `senders` processes on a new database with the list."""
    from newsletter.app.audience import import_csv  # noqa: PLC0415
    from newsletter.app.wiring import close_databases  # noqa: PLC0415
    from newsletter.config import load_config  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        config = _config(Path(tmp), port, new_database(maintenance), connections=4)
        _, report = import_csv(load_config(config), listing, datetime.now(UTC))
        close_databases()
        env = {**os.environ, "NEWSLETTER_UNSUBSCRIBE_SECRET": "benchmark-secret"}
        command = [sys.executable, "-m", "tests.sendbuilt", str(config), str(built)]
        started = time.perf_counter()
        processes = [subprocess.Popen(command, env=env, cwd=REPO) for _ in range(senders)]
        codes = [process.wait() for process in processes]
        seconds = time.perf_counter() - started
    if any(codes):
        raise SystemExit(f"a sender failed: exit codes {codes}")
    return report.added / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--senders", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if binaries() is None:
        raise SystemExit("PostgreSQL is not installed: apt-get install postgresql")
    from newsletter.app.build import build_issue  # noqa: PLC0415
    from newsletter.config import load_config  # noqa: PLC0415

    with discarding_sink() as port, tempfile.TemporaryDirectory() as tmp, server() as maintenance:
        root = Path(tmp)
        listing = _subscribers(root, args.subscribers)
        config = _config(root, port, new_database(maintenance), connections=4)
        built = root / "built.pickle"
        built.write_bytes(pickle.dumps(build_issue(load_config(config), AS_OF)))
        for senders in args.senders:
            for _ in range(args.repeat):
                rate = _trial(maintenance, port, listing, built, senders)
                load = " ".join(f"{x:.2f}" for x in os.getloadavg())
                print(
                    f"{senders} sender(s) x 4 connections, {args.subscribers} subscribers, "
                    f"PostgreSQL ledger: {rate:.0f} messages/s (load {load})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
