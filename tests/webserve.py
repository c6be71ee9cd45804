"""`newsletter serve` as a real subprocess on 127.0.0.1, for tests/test_web.py and
benchmarks/web_load.py."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from newsletter.delivery.capture import free_loopback_port


@dataclass
class Served:
    """A running `newsletter serve`; `out` and `err` hold its output once it has stopped."""

    process: subprocess.Popen[str]
    url: str
    out: str = ""
    err: str = ""


@contextmanager
def serve_process(
    config_path: Path, *options: str, env: dict[str, str] | None = None
) -> Iterator[Served]:
    """Start `newsletter serve --config config_path` on a free port with `options`; yields once
    it has printed that it serves (its socket listens from then on). Leaving sends SIGINT (if it
    still runs) and waits for it to stop."""
    port = free_loopback_port()
    command = [sys.executable, "-m", "newsletter", "serve", "--config", str(config_path)]
    process = subprocess.Popen(
        [*command, "--port", str(port), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    served = Served(process, f"http://127.0.0.1:{port}")
    first = process.stdout.readline() if process.stdout else ""
    try:
        if not first.startswith("Serving the archive on "):
            process.wait(timeout=30)
            raise AssertionError(
                f"serve did not start: {first}{process.stderr and process.stderr.read()}"
            )
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        served.out, served.err = first + out, err
