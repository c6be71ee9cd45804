"""How much memory an import and a send of a big list take, each in a fresh process.

Run by hand from the project folder:  python benchmarks/memory.py [--runs 3] [--million]

(a) `python -m newsletter subscribers import` of a 100,000-row CSV into a new SQLite database:
    wall time and peak RSS, and whether pandas or matplotlib got imported (`-X importtime`).
(b) A 100,000-subscriber send as `newsletter send` runs it: build the issue, then `send_issue`
    (which imports `subscribers.file` first) over 4 connections to the discarding SMTP sink of
    benchmarks/send.py, in its own process: messages a second (over `send_issue`, its import
    included) and peak RSS.
(c) The part of (b) before delivery: the build and the send's import, nothing sent, to tell
    the import's share of a send's peak.
(d) With --million, (c) and (b) for 1,000,000 subscribers, once each (it takes a while).

Peak RSS is the child's own high-water mark (VmHWM, which it reports as it exits; see
benchmarks/send.PEAK for why not ru_maxrss). Several runs print min / median / max; every line
carries the load average, since other work on the machine slows the figures down (memory far
less).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.send import (  # noqa: E402
    AS_OF,
    PEAK,
    _config,
    _subscribers,
    discarding_sink,
    peak_mb,
)

HEAVY = ("pandas", "matplotlib")
SEND = (
    f"{PEAK}; sys.path.insert(0, sys.argv[2]); from pathlib import Path; "
    "from benchmarks.send import measure_fast; "
    "sent, seconds = measure_fast(Path(sys.argv[1])); print(sent, seconds)"
)
SYNC = (
    f"{PEAK}; import time; from datetime import UTC, date, datetime; from pathlib import Path; "
    "from newsletter.app.audience import sync_subscribers; "
    "from newsletter.app.build import build_issue; from newsletter.config import load_config; "
    "config = load_config(Path(sys.argv[1])); build_issue(config, date.fromisoformat("
    f"'{AS_OF.isoformat()}')); started = time.perf_counter(); sync_subscribers(config, "
    "datetime.now(UTC)); print(time.perf_counter() - started)"
)
"""The part of a send before its delivery: build, then import `subscribers.file`."""


def _run(command: list[str]) -> tuple[str, str, float, float]:
    """Run `command` (its code begins with benchmarks.send.PEAK) to its end: (stdout, stderr,
    wall seconds, peak RSS in MB)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, cwd=REPO, text=True)
        child.wait()
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode:
        raise SystemExit(f"{command[:4]} failed ({child.returncode}):\n{stderr[-2000:]}")
    return stdout, stderr, seconds, peak_mb(stderr)


def _spread(values: list[float], unit: str, digits: int = 0) -> str:
    """min / median / max of `values` (or the one value)."""
    shown = [min(values), statistics.median(values), max(values)]
    if len(values) == 1:
        return f"{values[0]:.{digits}f} {unit}"
    return " / ".join(f"{value:.{digits}f}" for value in shown) + f" {unit} (min / median / max)"


def _load() -> str:
    return "load " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def _import_config(root: Path) -> Path:
    path = root / "config.yaml"
    path.write_text(
        yaml.safe_dump({"subscribers": {"file": None}, "paths": {"var_dir": str(root / "var")}})
    )
    return path


def _import(listing: Path, *flags: str) -> tuple[str, float, float]:
    """`subscribers import` of `listing` into a new database: (stderr, seconds, peak MB)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = _import_config(Path(tmp))
        cli = f"{PEAK}; import runpy; runpy.run_module('newsletter', run_name='__main__')"
        command = [sys.executable, *flags, "-c", cli, "subscribers", "import"]
        _out, err, wall, peak = _run([*command, str(listing), "--config", str(config)])
    return err, wall, peak


def measure_import(listing: Path, count: int, runs: int) -> None:
    """(a): `subscribers import` of the list, once with -X importtime, then `runs` times."""
    timing, _wall, _peak = _import(listing, "-X", "importtime")
    names = {line.rsplit("|", 1)[-1].strip() for line in timing.splitlines()}
    heavy = sorted(name for name in names if name.split(".")[0] in HEAVY)
    seconds, peaks = [], []
    for _ in range(runs):
        _err, wall, peak = _import(listing)
        seconds.append(wall)
        peaks.append(peak)
    print(
        f"import of {count:,} rows (`subscribers import`, fresh process, SQLite): "
        f"{_spread(seconds, 's', 1)}, peak RSS {_spread(peaks, 'MB')}; pandas or matplotlib "
        f"imported: {', '.join(heavy[:3]) or 'no'} ({_load()})",
        flush=True,
    )


def _fresh_runs(
    code: str, root: Path, port: int, listing: Path, runs: int
) -> list[tuple[str, float]]:
    """Run `code` (given the config and the project folder) `runs` times, each in a fresh
    process on a new database with `listing` as subscribers.file: (stdout, peak RSS in MB)."""
    results = []
    for _ in range(runs):
        config = _config(Path(tempfile.mkdtemp(dir=root)), port, listing)
        out, _err, _wall, peak = _run([sys.executable, "-c", code, str(config), str(REPO)])
        results.append((out, peak))
    return results


def measure_send(root: Path, port: int, listing: Path, count: int, runs: int) -> None:
    """(b), (d): build and send to the list, so every run imports and sends the whole list."""
    rates, peaks = [], []
    for out, peak in _fresh_runs(SEND, root, port, listing, runs):
        sent, seconds = out.split()
        if int(sent) != count:
            raise SystemExit(f"the send delivered {sent} of {count} messages")
        rates.append(int(sent) / float(seconds))
        peaks.append(peak)
    print(
        f"send to {count:,} (build, then send_issue with its import; 4 connections, SQLite "
        f"ledger, discarding sink): {_spread(rates, 'messages/s')}, peak RSS "
        f"{_spread(peaks, 'MB')} ({_load()})",
        flush=True,
    )


def measure_sync(root: Path, port: int, listing: Path, count: int, runs: int) -> None:
    """(c), (d): the send's import alone (after the build, as in a send; nothing delivered),
    to tell what of a send's peak is the import's."""
    results = _fresh_runs(SYNC, root, port, listing, runs)
    seconds = [float(out) for out, _peak in results]
    peaks = [peak for _out, peak in results]
    print(
        f"build, then the send's import of {count:,} (nothing delivered): import "
        f"{_spread(seconds, 's', 1)}, peak RSS {_spread(peaks, 'MB')} ({_load()})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of the import and the send")
    parser.add_argument("--million", action="store_true", help="also send to 1,000,000, once")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=["import", "sync", "send"],
        default=["import", "sync", "send"],
        help="which of (a), (c) and (b) to run for --subscribers",
    )
    args = parser.parse_args()
    with discarding_sink() as port, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        listing = _subscribers(root, args.subscribers)
        if "import" in args.parts:
            measure_import(listing, args.subscribers, args.runs)
        if "sync" in args.parts:
            measure_sync(root, port, listing, args.subscribers, args.runs)
        if "send" in args.parts:
            measure_send(root, port, listing, args.subscribers, args.runs)
        if args.million:
            million = _subscribers(root, 1_000_000)
            measure_sync(root, port, million, 1_000_000, 1)
            measure_send(root, port, million, 1_000_000, 1)


if __name__ == "__main__":
    main()
