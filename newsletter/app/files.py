"""The one sink for files the product writes: whole files or nothing, folder by folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

FILE_MODE = 0o644


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(data)
        tmp.flush()
        os.fsync(tmp.fileno())
    Path(tmp.name).chmod(FILE_MODE)
    Path(tmp.name).replace(path)


def write_folder(folder: Path, files: Mapping[str, bytes]) -> None:
    """Write every file of `files` (by name) into `folder`, each atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        write_atomic(folder / name, data)
