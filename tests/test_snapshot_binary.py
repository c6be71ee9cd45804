"""The bundled snapshot's binary copy (snapshot.npz) holds exactly what its CSVs hold, and is
never used for a CSV it does not record unchanged."""

from __future__ import annotations

import gzip
import hashlib
import shutil

import numpy as np
import pandas as pd

from newsletter.market.snapshot import BINARY, SnapshotSource, _binary_columns

from .conftest import REPO

SNAPSHOT = REPO / "newsletter" / "data" / "market"
INDEXES = {"GSPC", "RUT", "NDX", "TNX"}


def _tickers() -> list[str]:
    stems = sorted(p.name.removesuffix(".csv.gz") for p in SNAPSHOT.glob("*.csv.gz"))
    return [f"^{s}" if s in INDEXES else s for s in stems]


def test_the_shipped_binary_records_every_csv_as_it_is():
    with np.load(SNAPSHOT / BINARY) as stored:
        digests = dict(item.split(":", 1) for item in stored["digests"].tolist())
    assert digests == {
        p.name.removesuffix(".csv.gz"): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in SNAPSHOT.glob("*.csv.gz")
    }, "a CSV changed: run python scripts/build_snapshot.py"


def test_binary_and_csv_give_the_same_prices(tmp_path):
    csv_only = tmp_path / "csv"
    shutil.copytree(SNAPSHOT, csv_only, ignore=shutil.ignore_patterns(BINARY))
    tickers = _tickers()
    assert set(_binary_columns(SNAPSHOT, tickers)) == set(tickers)  # every one from the copy
    fast, slow = SnapshotSource(SNAPSHOT).fetch(tickers), SnapshotSource(csv_only).fetch(tickers)
    pd.testing.assert_frame_equal(fast.adjusted, slow.adjusted)
    pd.testing.assert_frame_equal(fast.raw, slow.raw)


def test_an_edited_csv_is_read_as_csv(tmp_path):
    folder = tmp_path / "snapshot"
    shutil.copytree(SNAPSHOT, folder)
    with gzip.open(folder / "SPY.csv.gz", "rt") as handle:
        lines = handle.read().splitlines(keepends=True)
    date, *fields = lines[-1].rstrip("\n").split(",")
    fields[3] = fields[4] = "123.45"  # close and adj_close of the last row
    lines[-1] = ",".join([date, *fields]) + "\n"
    with gzip.open(folder / "SPY.csv.gz", "wt") as handle:
        handle.write("".join(lines))
    assert set(_binary_columns(folder, ["SPY", "IWM"])) == {"IWM"}  # SPY from its CSV
    prices = SnapshotSource(folder).fetch(["SPY", "IWM"])
    assert prices.adjusted["SPY"].dropna().iloc[-1] == 123.45
    original = SnapshotSource(SNAPSHOT).fetch(["IWM"])
    pd.testing.assert_series_equal(
        prices.adjusted["IWM"].dropna(), original.adjusted["IWM"].dropna()
    )


def test_a_damaged_binary_copy_falls_back_to_the_csvs(tmp_path):
    folder = tmp_path / "snapshot"
    shutil.copytree(SNAPSHOT, folder)
    (folder / BINARY).write_bytes((SNAPSHOT / BINARY).read_bytes()[:1000])  # cut short
    assert _binary_columns(folder, ["SPY", "^GSPC"]) == {}
    damaged = SnapshotSource(folder).fetch(["SPY", "^GSPC"])
    csv_only = tmp_path / "csv"
    shutil.copytree(SNAPSHOT, csv_only, ignore=shutil.ignore_patterns(BINARY))
    pd.testing.assert_frame_equal(
        damaged.adjusted, SnapshotSource(csv_only).fetch(["SPY", "^GSPC"]).adjusted
    )
