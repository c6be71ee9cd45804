"""Typed values passed between pipeline stages; no I/O here.

pandas is imported only for type checking so that the CLI's --help stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

UNSUBSCRIBE_MARKER = "urn:rotation-digest:unsubscribe-url"
"""Stands in the rendered issue for each subscriber's own unsubscribe URL (see compose)."""


@dataclass(frozen=True, slots=True)
class Prices:
    """Daily closes per ticker on one session index: adjusted (total return) and raw.

    `adjusted` is Yahoo's Adj Close (dividends and splits), `raw` the split-adjusted close; for
    indexes the two are equal. Missing sessions are NaN, never forward-filled.
    """

    adjusted: pd.DataFrame
    raw: pd.DataFrame
    source: str

    def __post_init__(self) -> None:
        for frame in (self.adjusted, self.raw):
            if not frame.index.is_monotonic_increasing or not frame.index.is_unique:
                raise ValueError("Prices index must be unique, ascending sessions")
        if list(self.adjusted.columns) != list(self.raw.columns):
            raise ValueError("Prices adjusted and raw frames must hold the same tickers")

    @property
    def tickers(self) -> list[str]:
        return [str(column) for column in self.adjusted.columns]


@dataclass(frozen=True, slots=True)
class ReportDates:
    """The sessions one issue's returns are measured from and to."""

    as_of: date
    prev_close: date
    month_base: date
    ytd_base: date


@dataclass(frozen=True, slots=True)
class IndexWeights:
    """Index weights (fractions) per ticker at the close of `as_of`, and where they came from."""

    as_of: date
    weights: dict[str, float]
    source: str


@dataclass(frozen=True, slots=True)
class PeriodReturns:
    """Total returns of one ticker over the digest's standard periods (fractions)."""

    week: float
    month: float
    ytd: float


@dataclass(frozen=True, slots=True)
class SpreadStats:
    """The rolling 5-session return spread long - short ending at the as-of session."""

    long: str
    short: str
    value: float
    long_return: float
    short_return: float
    window_start: date
    rank: int
    of: int
    percentile: float
    largest_since: date | None
    history_start: date


@dataclass(frozen=True, slots=True)
class MemberContribution:
    """One mega cap (or share-class group) and its part of the index's YTD return."""

    name: str
    tickers: tuple[str, ...]
    weight: float
    week: float
    ytd: float
    contribution: float
    share: float


@dataclass(frozen=True, slots=True)
class Concentration:
    """Mega caps' contribution to the index's YTD price return from start-of-year weights."""

    index: str
    index_ytd: float
    weights_as_of: date
    weights_source: str
    members: tuple[MemberContribution, ...]
    group_contribution: float
    group_share: float


@dataclass(frozen=True, slots=True)
class WeekStats:
    """Everything the digest says in numbers for one as-of session."""

    as_of: date
    prev_close: date
    month_base: date
    ytd_base: date
    returns: dict[str, PeriodReturns]
    spread_5d: SpreadStats
    concentration: Concentration | None
    concentration_note: str | None
    data_source: str

    def to_json(self) -> dict[str, Any]:
        """The stats.json contract: keys are never renamed, only added."""
        spread = self.spread_5d
        return {
            "as_of": self.as_of.isoformat(),
            "prev_close": self.prev_close.isoformat(),
            "period_bases": {
                "1W": self.prev_close.isoformat(),
                "1M": self.month_base.isoformat(),
                "YTD": self.ytd_base.isoformat(),
            },
            "returns": {
                ticker: {"1W": r.week, "1M": r.month, "YTD": r.ytd}
                for ticker, r in self.returns.items()
            },
            "spread_5d": {
                "long": spread.long,
                "short": spread.short,
                "value": spread.value,
                "long_return": spread.long_return,
                "short_return": spread.short_return,
                "window_start": spread.window_start.isoformat(),
                "rank": spread.rank,
                "of": spread.of,
                "percentile": spread.percentile,
                "largest_since": _iso(spread.largest_since),
                "history_start": spread.history_start.isoformat(),
            },
            "concentration": _concentration_json(self.concentration),
            "concentration_note": self.concentration_note,
            "data_source": self.data_source,
        }


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _concentration_json(conc: Concentration | None) -> dict[str, Any] | None:
    if conc is None:
        return None
    return {
        "index": conc.index,
        "index_ytd": conc.index_ytd,
        "basis": "price",
        "weights_as_of": conc.weights_as_of.isoformat(),
        "weights_source": conc.weights_source,
        "members": {
            m.name: {
                "tickers": list(m.tickers),
                "weight": m.weight,
                "1W": m.week,
                "ytd": m.ytd,
                "contribution": m.contribution,
                "share": m.share,
            }
            for m in conc.members
        },
        "group_contribution": conc.group_contribution,
        "group_share": conc.group_share,
    }


@dataclass(frozen=True, slots=True)
class Chart:
    """A rendered chart: PNG bytes, the alt text that carries its key number, its file name."""

    name: str
    png: bytes
    alt_text: str
    width_px: int
    height_px: int

    @property
    def filename(self) -> str:
        return f"{self.name}.png"

    @property
    def content_id(self) -> str:
        """The Content-ID (without angle brackets) the HTML refers to as cid:."""
        return f"{self.name}@charts.rotation-digest"


@dataclass(frozen=True, slots=True)
class Issue:
    """One digest's content, ready to render: statistics, charts and the words around them."""

    stats: WeekStats
    charts: tuple[Chart, ...]
    subject: str
    preheader: str
    newsletter_name: str
    base_url: str
    postal_address: str


@dataclass(frozen=True, slots=True)
class RenderedIssue:
    """The rendered digest: subject, HTML (with cid: image refs), plain text and the images."""

    as_of: date
    subject: str
    html: str
    text: str
    images: tuple[Chart, ...]


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One recipient: a normalised address and a display name."""

    email: str
    name: str


@dataclass(slots=True)
class DeliveryReport:
    """What a delivery run did: addresses sent now, skipped as already sent, and refused."""

    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.refused


TICKER_NAMES = {
    "SPY": "S&P 500",
    "IWM": "Russell 2000",
    "QQQ": "Nasdaq-100",
    "RSP": "S&P 500 Equal Weight",
    "DIA": "Dow Jones",
    "^GSPC": "S&P 500 index",
    "^RUT": "Russell 2000 index",
    "^NDX": "Nasdaq-100 index",
    "NVDA": "Nvidia",
    "MSFT": "Microsoft",
    "AAPL": "Apple",
    "GOOGL+GOOG": "Alphabet",
    "AMZN": "Amazon",
    "META": "Meta",
}


def display_name(ticker: str) -> str:
    """A reader-facing name for a ticker or share-class group; the ticker itself if unknown."""
    return TICKER_NAMES.get(ticker, ticker)
