"""What the commands share: the clock, the config, --as-of, and the progress bar."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from newsletter.errors import AsOfError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator

    from rich.progress import Progress

    from newsletter.config import Config


LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
"""The commands' log lines on stderr (the servers' workers log the same way)."""


def now_utc() -> datetime:
    """The clock every command passes down (the layers below never read it themselves)."""
    return datetime.now(UTC)


def parse_as_of(text: str | None) -> date | None:
    """--as-of as a date (None: the default issue)."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as err:
        raise AsOfError(f"--as-of must be a date as YYYY-MM-DD, got '{text}'") from err


def load(args: argparse.Namespace) -> Config:
    """The configuration named by --config."""
    from newsletter.config import load_config  # noqa: PLC0415 (pydantic off the --help path)

    return load_config(args.config)


@contextmanager
def progress_bar(label: str, *, quiet: bool, detail: bool = False) -> Iterator[Progress]:
    """A transient rich progress bar on stderr (off with --quiet)."""
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn  # noqa: PLC0415

    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
    if detail:
        columns.append(TextColumn("{task.description}"))
    with Progress(
        *columns, console=Console(stderr=True), transient=True, disable=quiet
    ) as progress:
        yield progress


@contextmanager
def refresh_progress(config: Config, *, quiet: bool) -> Iterator[Callable[[str], None]]:
    """The price refresh's progress bar (one step a ticker); yields the callback to feed it."""
    from newsletter.app.data import price_tickers  # noqa: PLC0415

    with progress_bar("Refreshing prices", quiet=quiet, detail=True) as progress:
        task = progress.add_task("", total=len(price_tickers(config)))
        yield lambda ticker: progress.update(task, advance=1, description=ticker)
