"""Check every generated claim for every session the bundled snapshot can build, with the
rules of tests/test_claims.py (the suite checks every 25th session; this checks them all).

    python scripts/claims_all_weeks.py [--every N]

Prints how many sessions and sentences were checked and how many of each kind of claim.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter.app.data import load_market  # noqa: E402
from newsletter.config import load_config  # noqa: E402
from tests.test_claims import judge_week  # noqa: E402

KINDS = {
    "beat by": r" beat .+ by \d",
    "level": r"finished level",
    "rose/fell": r" (rose|fell) \d",
    "record": r"in data back to",
    "since": r"the largest [\w -]+ since [A-Z]",
    "larger than P%": r"a larger .+ than \d+%",
    "mega caps": r"mega caps made|biggest drag",
    "aftermath": r"After .*largest earlier episodes",
    "next": r"^Next: ",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--every", type=int, default=1, help="check every Nth session (default 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(f"paths:\n  var_dir: {Path(folder) / 'var'}\n")
        config = load_config(path)
        market = load_market(config)
        both = market.prices.adjusted[["IWM", "SPY"]].dropna().index
        days = [d.date() for d in both[both >= "2001-06-01"][:: args.every]]
        counts: collections.Counter[str] = collections.Counter()
        started = time.perf_counter()
        sentences = 0
        for day in days:
            for sentence in judge_week(market, config, day):
                sentences += 1
                counts.update(
                    kind for kind, pattern in KINDS.items() if re.search(pattern, sentence)
                )
        elapsed = time.perf_counter() - started
    print(
        f"{len(days):,} sessions, {sentences:,} sentences, every claim true ({elapsed:.0f} s, "
        f"load {os.getloadavg()[0]:.2f})"
    )
    for kind in KINDS:
        print(f"  {kind:15} {counts[kind]:6,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
