"""Write the binary copy (snapshot.npz) of a snapshot folder's CSVs, after checking every row
as the CSV reader does; the loader uses it for each ticker whose CSV it records unchanged.

    python scripts/build_snapshot.py [FOLDER]   (default: the bundled newsletter/data/market)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter.market.snapshot import BINARY, file_digest, read_price_file  # noqa: E402


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "newsletter" / "data" / "market"
    arrays: dict[str, np.ndarray] = {}
    digests = []
    files = sorted([*folder.glob("*.csv.gz"), *folder.glob("*.csv")])
    for path in files:
        stem = path.name.removesuffix(".gz").removesuffix(".csv")
        frame = read_price_file(path, stem)
        arrays[f"{stem}.days"] = frame.index.to_numpy().astype("datetime64[D]").astype(np.int32)
        arrays[f"{stem}.raw"] = frame["raw"].to_numpy(dtype=np.float64)
        arrays[f"{stem}.adjusted"] = frame["adjusted"].to_numpy(dtype=np.float64)
        digests.append(f"{stem}:{file_digest(path)}")
    np.savez(folder / BINARY, digests=np.array(digests), **arrays)
    print(f"{folder / BINARY}: {len(files)} tickers, {(folder / BINARY).stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
