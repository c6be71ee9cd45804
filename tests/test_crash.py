"""A real send of 400 messages, killed with SIGKILL at several points and resumed.

The killed senders are processes that send an issue built once here (tests/sendbuilt.py, the
send `newsletter send` runs after its build); the last resume is `newsletter send` itself.
The server (aiosmtpd, in this process) counts what it stored by Message-ID. After the last
resume every subscriber has the issue, and a message stored twice is only ever one that was in
flight when the sender was killed: the documented lost-reply case, with the same Message-ID.
"""

from __future__ import annotations

import csv
import os
import pickle
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import date

import pytest
import yaml

from newsletter.config import load_config

from .conftest import REPO, newsletter_command, serving
from .smtpfaults import CountingHandler

SUBSCRIBERS = 400
CONNECTIONS = 2
KILL_AT = (60, 160, 270)


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resume_sends_everyone_once(tmp_path, prepare):
    subscribers = tmp_path / "subscribers.csv"
    with subscribers.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        writer.writerows([f"reader{i:04d}@example.com", f"Reader {i}"] for i in range(SUBSCRIBERS))
    handler = CountingHandler()
    stack = ExitStack()
    port = stack.enter_context(serving(handler))
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "templates": {"dir": str(REPO / "templates")},
                "subscribers": {"file": str(subscribers)},
                "paths": {"var_dir": str(tmp_path / "var")},
                "newsletter": {"images": "hosted"},  # small messages: the ledger is the test
                "smtp": {"host": "127.0.0.1", "port": port, "timeout_s": 5},
                "delivery": {"connections": CONNECTIONS, "rate_per_s": 400, "retry_backoff_s": 0},
            }
        )
    )
    built = tmp_path / "built.pickle"
    issue = prepare(load_config(config), date(2024, 7, 16)).built
    built.write_bytes(pickle.dumps(issue))
    killed = [sys.executable, "-m", "tests.sendbuilt", str(config), str(built)]
    command = newsletter_command(
        "send", "--config", str(config), "--as-of", "2024-07-16", "--quiet"
    )
    env = {**os.environ, "NEWSLETTER_UNSUBSCRIBE_SECRET": "crash-test-secret"}
    try:
        for threshold in KILL_AT:
            process = subprocess.Popen(
                killed, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            deadline = time.monotonic() + 120
            while (
                handler.stored < threshold
                and process.poll() is None
                and time.monotonic() < deadline
            ):
                time.sleep(0.005)
            assert process.poll() is None, (
                f"the send ended before {threshold} messages: {process.stderr.read()}"
            )
            process.send_signal(signal.SIGKILL)
            process.wait()
            process.stderr.close()
        final = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=300, check=False
        )
    finally:
        stack.close()
    assert final.returncode == 0, final.stderr
    assert len(handler.ids) == SUBSCRIBERS  # everyone, each by their own fixed Message-ID
    duplicates = sum(count - 1 for count in handler.ids.values())
    assert duplicates <= len(KILL_AT) * CONNECTIONS, handler.ids.most_common(5)
    assert f"Ledger:  {SUBSCRIBERS} sent" in final.stdout
