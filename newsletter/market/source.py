"""The seam every price provider sits behind, so stats never know where prices came from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date

    from newsletter.models import Prices


class MarketDataSource(Protocol):
    """A provider of daily closes (adjusted and raw) for a list of tickers."""

    @property
    def name(self) -> str:
        """How the email and stats.json name this source."""
        ...

    def fetch(self, tickers: Sequence[str], start: date | None = None) -> Prices:
        """Every session the provider has for `tickers` (from `start` on, if given); raise
        DataError if it cannot."""
        ...
