"""Typed values passed between pipeline stages; no I/O here.

pandas is imported only for type checking so that the CLI's --help stays instant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from newsletter.weekstats import WeekStats

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""Control characters (C0 with tab, CR and LF; DEL; C1 with NEL): no header, subject or name
that goes into a message may carry one raw."""

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

    def spread(self, long: str, short: str, sessions: int) -> pd.Series:
        """The `sessions`-session return spread long - short at every session with a full window.

        Rows are sessions, so a gap in the data is a NaN window, never a longer one.
        """
        frame = self.adjusted[[long, short]]
        window = frame / frame.shift(sessions) - 1
        return (window[long] - window[short]).dropna()

    def ratio(self, long: str, short: str) -> pd.Series:
        """long/short adjusted-close ratio at every session (relative strength); NaN where
        either lacks a close, so a window of N rows is N sessions, as for `spread`."""
        ratio: pd.Series = self.adjusted[long] / self.adjusted[short]
        return ratio


@dataclass(frozen=True, slots=True)
class ReportDates:
    """The sessions one issue's returns are measured from and to (see market/calendar.py)."""

    as_of: date
    prev_close: date
    seven_days_base: date
    month_base: date
    quarter_base: date
    ytd_base: date
    year_base: date


@dataclass(frozen=True, slots=True)
class EstimateSnapshot:
    """Analysts' average revenue estimate for one ticker and fiscal period, as seen on one day."""

    ticker: str
    taken_on: date
    period: str
    revenue_avg: float
    analysts: int
    next_earnings: date | None
    shares: float | None = None


@dataclass(frozen=True, slots=True)
class IndexWeights:
    """Index weights (fractions) per ticker at the close of `as_of`, and where they came from."""

    as_of: date
    weights: dict[str, float]
    source: str


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
    note: str = ""
    """The editor's note and curated links, in Markdown (empty: none this week)."""
    lede: tuple[str, ...] = ()
    """The week in ten seconds: the sentences above everything else (issue/lede.py)."""
    data_warning: str = ""
    """Shown at the top when the editor built despite data-quality problems (--allow-stale)."""

    @property
    def web_url(self) -> str:
        """The issue's page in the archive `newsletter serve` publishes under base_url."""
        return f"{self.base_url}/issues/{self.stats.as_of.isoformat()}/"


@dataclass(frozen=True, slots=True)
class RenderedIssue:
    """The rendered digest: subject, HTML (with cid: image refs), plain text and the images."""

    as_of: date
    subject: str
    html: str
    text: str
    images: tuple[Chart, ...]


class SubscriberStatus(StrEnum):
    """Whether a subscriber gets the next issue (only `active` ones do)."""

    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    UNCONFIRMED = "unconfirmed"
    """Signed up and not yet confirmed: never mailed an issue; expires unconfirmed."""


class JoinMethod(StrEnum):
    """How a subscriber came onto the list: part of their consent record."""

    IMPORT = "import"
    SIGNUP = "signup"
    ADMIN = "admin"


class NoticeKind(StrEnum):
    """A message to one person about their subscription, sent outside any issue."""

    CONFIRM = "confirm"
    """The double opt-in mail: a signed link that confirms the signup."""
    WELCOME = "welcome"
    """Sent once a signup is confirmed."""


class InboundKind(StrEnum):
    """What one message in the bounce mailbox was, as the database records it; only the first
    four name a subscriber (db: bounce_events)."""

    HARD = "hard"
    """A permanent refusal of the recipient's mailbox (it does not exist)."""
    SOFT = "soft"
    """Any other failure; `bounces.soft_limit` of them in `soft_days` days bounce the reader."""
    COMPLAINT = "complaint"
    """A feedback report (ARF): the reader marked the issue as spam."""
    UNSUBSCRIBE = "unsubscribe"
    """A mail to the unsubscribe address, from a subscriber."""
    IGNORED = "ignored"
    """Nothing to act on: unreadable, no or a forged token, not our address, a delay notice."""
    DUPLICATE = "duplicate"
    """The same bytes were read before (in this or another mailbox)."""


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One recipient: a normalised address, a display name and (on import) a status."""

    email: str
    name: str
    status: SubscriberStatus = SubscriberStatus.ACTIVE


class LedgerStatus(StrEnum):
    """Where one (issue, subscriber) message stands: pending -> claimed -> one of the rest."""

    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    DEFERRED = "deferred"
    """Retried `delivery.max_attempts` times without success; the next run tries again."""
    BOUNCED = "bounced"
    """Refused for good because the mailbox does not exist (5.1.x)."""
    FAILED = "failed"
    """Refused for good for another reason."""
    SKIPPED = "skipped"
    """The subscriber left before their message went out."""


UNFINISHED = frozenset({LedgerStatus.PENDING, LedgerStatus.CLAIMED, LedgerStatus.DEFERRED})
"""Ledger statuses of messages that will still be tried."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One claimed (issue, subscriber) message to send."""

    subscriber_id: int
    email: str
    name: str
    message_id: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one claimed message, as the ledger records it."""

    subscriber_id: int
    status: LedgerStatus
    reply: str
    retry_at: datetime | None = None
    bounce_subscriber: bool = False
    uncertain: bool = False
    """The whole message went out and the reply was lost: it may have been stored."""


_ADDRESS = re.compile(r"<?[^\s<>@:]+@[^\s<>:]+>?")


def without_addresses(reply: str) -> str:
    """A server's reply with the mail addresses in it taken out, so replies to two recipients
    compare (and group) as one."""
    return _ADDRESS.sub("<address>", reply).strip()


@dataclass(slots=True)
class DeliveryReport:
    """What one send run did, counted by outcome, with the refusals spelled out."""

    sent: int = 0
    retried: int = 0
    bounced: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0
    uncertain: int = 0
    """Messages whose reply was lost this run (each goes once more, with the same Message-ID)."""
    refusals: list[tuple[str, str]] = field(default_factory=list)
    """(address, what happened) of each message refused or deferred in this run."""
    paused: str = ""
    """Why the run stopped early with everything unsent left pending ('' if it did not)."""

    def reasons(self) -> list[tuple[str, int]]:
        """The refusals grouped by reply, addresses taken out, most frequent first."""
        counts: dict[str, int] = {}
        for _address, reply in self.refusals:
            reason = without_addresses(reply)
            counts[reason] = counts.get(reason, 0) + 1
        return sorted(counts.items(), key=lambda item: -item[1])


TICKER_NAMES = {
    "SPY": "S&P 500",
    "IWM": "Russell 2000",
    "QQQ": "Nasdaq-100",
    "RSP": "S&P 500 Equal Weight",
    "DIA": "Dow Jones",
    "^GSPC": "S&P 500",
    "^RUT": "Russell 2000",
    "^NDX": "Nasdaq-100",
    "^TNX": "10-year Treasury yield",
    "XLB": "Materials",
    "XLC": "Communication Services",
    "XLE": "Energy",
    "XLF": "Financials",
    "XLI": "Industrials",
    "XLK": "Technology",
    "XLP": "Consumer Staples",
    "XLRE": "Real Estate",
    "XLU": "Utilities",
    "XLV": "Health Care",
    "XLY": "Consumer Discretionary",
    "NVDA": "Nvidia",
    "MSFT": "Microsoft",
    "AAPL": "Apple",
    "GOOGL+GOOG": "Alphabet",
    "AMZN": "Amazon",
    "META": "Meta",
}


def address_key(address: str) -> str:
    """The key two spellings of one mailbox share: mail providers ignore case in practice."""
    return address.lower()


SHORT_NAMES = {
    "XLC": "Communication",
    "XLY": "Discretionary",
    "XLP": "Staples",
    "XLRE": "Real estate",
    "XLV": "Health care",
}
"""Names that fit beside a bar on a phone; every other name is short already."""


def short_name(ticker: str) -> str:
    """A name for a chart's narrow label column: `display_name` unless that is too long."""
    return SHORT_NAMES.get(ticker, display_name(ticker))


def display_name(ticker: str) -> str:
    """A reader-facing name for a ticker or share-class group; the ticker itself if unknown."""
    return TICKER_NAMES.get(ticker, ticker)
