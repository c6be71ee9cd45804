"""The editor's notes file of an issue: where it lives, starting it, reading it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from newsletter.app.files import write_atomic
from newsletter.errors import RenderError
from newsletter.issue.notes import TEMPLATE, EditorNotes, parse_notes

if TYPE_CHECKING:
    from datetime import date
    from pathlib import Path

    from newsletter.config import Config

NOTES_FILE = "notes.md"


def notes_path(config: Config, as_of: date) -> Path:
    """paths.notes_dir/<as-of>/notes.md."""
    return config.paths.notes_dir / as_of.isoformat() / NOTES_FILE


def read_notes(config: Config, as_of: date) -> EditorNotes:
    """What the editor wrote for the issue; empty if nothing."""
    path = notes_path(config, as_of)
    try:
        return parse_notes(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return EditorNotes()
    except UnicodeDecodeError as err:
        raise RenderError(
            f"the editor's note {path} is not UTF-8 text ({err.reason} at byte {err.start}); "
            "save it as UTF-8 and build again"
        ) from err
    except OSError as err:
        raise RenderError(f"cannot read the editor's note {path}: {err.strerror}") from err


def start_draft(config: Config, requested: date | None) -> tuple[Path, date, bool]:
    """Create the issue's notes file from the commented template (never over an existing one).

    Returns the path, the issue's session and whether the file was created now.
    """
    from newsletter.app.data import load_market  # noqa: PLC0415 (pandas only to start one)

    as_of = load_market(config, requested).as_of
    path = notes_path(config, as_of)
    if path.exists():
        return path, as_of, False
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, TEMPLATE.format(as_of=as_of.isoformat()).encode())
    return path, as_of, True
