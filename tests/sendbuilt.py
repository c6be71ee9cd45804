"""`python -m tests.sendbuilt CONFIG BUILT`: send a pickled built issue with `app.send`, as
`newsletter send` does after its build, so a crash test can kill sends without rebuilding."""

from __future__ import annotations

import os
import pickle
import sys
from datetime import UTC, datetime
from pathlib import Path

from newsletter.app.send import send_issue
from newsletter.config import load_config, resolve_secrets


def main(config_path: str, built_path: str) -> int:
    config = load_config(Path(config_path))
    built = pickle.loads(Path(built_path).read_bytes())
    result = send_issue(
        config,
        built,
        secrets=resolve_secrets(config, os.environ),
        clock=lambda: datetime.now(UTC),
    )
    if not result.complete:
        sys.stderr.write(f"incomplete: ledger {dict(result.ledger)}; {result.report}\n")
    return 0 if result.complete else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
