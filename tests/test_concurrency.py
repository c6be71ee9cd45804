"""Three sender processes started at the same moment on one issue share the ledger: 2,000
readers on PostgreSQL with one of them SIGKILLed mid-send (the three race live until then),
and 600 on SQLite with all three live (tests/test_crash.py kills senders on SQLite). They
import the same list and enqueue the same audience at once (idempotent inserts, no sender dies
of a race), split the claims, take over the claims of the killed one, wait for live peers, and
each survivor exits 0 once the issue is delivered by someone. A final send then finds nothing
lost; a message stored twice is only one that was in flight on a connection of the killed
sender (the documented lost-reply case, with the same Message-ID)."""

from __future__ import annotations

import csv
import os
import pickle
import signal
import subprocess
import sys
import time
from datetime import date

import pytest
import yaml

from newsletter.config import load_config
from tests.conftest import ON_POSTGRESQL, REPO, serving
from tests.smtpfaults import CountingHandler

READERS = {"postgresql": 2000, "sqlite": 600}
"""The issue's list: 2,000 on PostgreSQL (the scale-out case); SQLite, where BEGIN IMMEDIATE
serialises every claim anyway, shows the same races and take-over on fewer."""
SENDERS = 3
CONNECTIONS = 2


def _config(tmp_path, port, database_url, readers):
    subscribers = tmp_path / "subscribers.csv"
    with subscribers.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        writer.writerows([f"reader{i:05d}@example.com", f"Reader {i}"] for i in range(readers))
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "templates": {"dir": str(REPO / "templates")},
                "subscribers": {"file": str(subscribers)},
                "paths": {"var_dir": str(tmp_path / "var")},
                "database": {"url": database_url},
                "newsletter": {"images": "hosted"},  # small messages: the ledger is the test
                "smtp": {"host": "127.0.0.1", "port": port, "timeout_s": 10},
                "delivery": {
                    "connections": CONNECTIONS,
                    "rate_per_s": 10_000,
                    "retry_backoff_s": 0,
                    "max_wait_s": 120,
                },
            }
        )
    )
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("database_url", "kill"),
    [pytest.param(*ON_POSTGRESQL.values, True, marks=ON_POSTGRESQL.marks), ("sqlite", False)],
    ids=["postgresql-one-killed", "sqlite-all-live"],
    indirect=["database_url"],
)
def test_three_senders_share_one_issue_and_lose_nothing(tmp_path, prepare, database_url, kill):
    readers = READERS["sqlite" if database_url is None else "postgresql"]
    handler = CountingHandler()
    with serving(handler) as port:
        config = _config(tmp_path, port, database_url, readers)
        built = tmp_path / "built.pickle"
        built.write_bytes(pickle.dumps(prepare(load_config(config), date(2024, 7, 16)).built))
        command = [sys.executable, "-m", "tests.sendbuilt", str(config), str(built)]
        env = {**os.environ, "NEWSLETTER_UNSUBSCRIBE_SECRET": "concurrency-test-secret"}
        senders = [
            subprocess.Popen(
                command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for _ in range(SENDERS)
        ]
        if kill:
            deadline = time.monotonic() + 120
            while handler.stored < readers // 3 and time.monotonic() < deadline:
                time.sleep(0.005)
            assert senders[0].poll() is None, "the sender to kill ended before it was killed"
            senders[0].send_signal(signal.SIGKILL)
        results = [sender.communicate(timeout=300) for sender in senders]
        final = subprocess.run(
            command, env=env, cwd=REPO, capture_output=True, timeout=300, check=False
        )
    survivors = senders[1:] if kill else senders
    for sender, (_, err) in zip(senders, results, strict=True):
        if sender in survivors:
            assert sender.returncode == 0, err.decode()
    if kill:
        assert senders[0].returncode == -signal.SIGKILL
    assert final.returncode == 0, final.stderr.decode()
    assert len(handler.ids) == readers  # everyone, each by their own fixed Message-ID
    duplicates = sum(count - 1 for count in handler.ids.values())
    assert duplicates <= (CONNECTIONS if kill else 0), handler.ids.most_common(3)
