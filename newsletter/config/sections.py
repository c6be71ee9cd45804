"""The configuration's sections: frozen pydantic models, each the settings of one stage.

Defaults run offline: the bundled market snapshot, the sample subscribers and the built-in local
SMTP capture server. A stage takes its section as it is (no field-by-field copies).
"""

from __future__ import annotations

import datetime as dt
import re
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
)

from newsletter.config.bounces import BouncesSection, bounce_local_part
from newsletter.config.checks import (
    bare_address,
    dmarc_aligned,
    has_control,
    https_url,
    mailbox,
    mailto_address,
    mask_url,
)
from newsletter.config.dkim import DkimSection

PACKAGE_DIR = Path(__file__).resolve().parent.parent
BUILTIN_SNAPSHOT_DIR = PACKAGE_DIR / "data" / "market"
BUILTIN_SUBSCRIBERS = PACKAGE_DIR / "data" / "sample_subscribers.csv"
BUILTIN_KEY_DATES = PACKAGE_DIR / "data" / "key_dates.csv"
BUILTIN_SMTP_HOST = "builtin"

_TICKER = re.compile(r"^\^?[A-Z][A-Z0-9.\-]{0,9}$")


class _Section(BaseModel):
    """Base of every section: immutable, and unknown keys are errors (a typo must not pass)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_line(value: str | None) -> str | None:
    """A value that goes into a mail header: one line, so config cannot inject headers."""
    if value is not None and has_control(value):
        raise ValueError("must be one line without control characters (it goes into a mail header)")
    return value


def _check_tickers(values: list[str]) -> list[str]:
    for value in values:
        for ticker in value.split("+"):
            if not _TICKER.match(ticker):
                raise ValueError(
                    f"'{value}' is not a ticker symbol such as SPY, ^GSPC or GOOGL+GOOG"
                )
    return values


class NewsletterSection(_Section):
    name: str = "Rotation Digest"
    from_address: str = "Rotation Digest <digest@example.com>"
    reply_to: str | None = None
    list_id: str = "rotation-digest.example.com"
    base_url: str = "https://digest.example.com"
    unsubscribe_mailto: str = "unsubscribe@example.com"
    unsubscribe_secret_env: str = "NEWSLETTER_UNSUBSCRIBE_SECRET"
    postal_address: str = "Rotation Digest, 1 Example Street, Springfield, USA"
    images: Literal["cid", "hosted"] = "cid"
    bounce_address: str | None = None

    @property
    def envelope_sender(self) -> str:
        """SMTP's MAIL FROM without VERP: the bounce address, else the From: header's address."""
        return self.bounce_address or parseaddr(self.from_address)[1]

    @field_validator("bounce_address")
    @classmethod
    def _bounces(cls, value: str | None) -> str | None:
        if value is None:
            return value
        return bounce_local_part(bare_address(value, "bounces@example.com"))

    @field_validator("name")
    @classmethod
    def _header_safe(cls, value: str | None) -> str | None:
        return _one_line(value)

    @field_validator("from_address")
    @classmethod
    def _from(cls, value: str) -> str:
        return mailbox(value, "Rotation Digest <digest@example.com>")

    @field_validator("reply_to")
    @classmethod
    def _reply_to(cls, value: str | None) -> str | None:
        return mailbox(value, "Editor <editor@example.com>") if value else value

    @field_validator("unsubscribe_mailto")
    @classmethod
    def _mailto(cls, value: str) -> str:
        return mailto_address(value, "unsubscribe@example.com")

    @field_validator("base_url")
    @classmethod
    def _https(cls, value: str) -> str:
        return https_url(value)

    @field_validator("list_id")
    @classmethod
    def _list_id(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.\-]*\.[A-Za-z]{2,}", value):
            raise ValueError("must be a dotted name such as digest.example.com")
        return value


class MarketSection(_Section):
    provider: Literal["snapshot", "yfinance"] = "snapshot"
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    attempts: int = Field(default=3, ge=1, le=10)
    snapshot_dir: Path = BUILTIN_SNAPSHOT_DIR
    key_dates_file: Path = BUILTIN_KEY_DATES

    @property
    def is_live(self) -> bool:
        """Whether prices come from the live provider (through the local store)."""
        return self.provider == "yfinance"


SECTOR_SPDRS = ["XLB", "XLC", "XLE", "XLF", "XLI", "XLK", "XLP", "XLRE", "XLU", "XLV", "XLY"]


class StatsSection(_Section):
    scoreboard: list[str] = Field(default_factory=lambda: ["SPY", "IWM", "QQQ", "RSP", "DIA"])
    long_indexes: list[str] = Field(default_factory=lambda: ["^GSPC", "^RUT", "^NDX"])
    spread_long: str = "IWM"
    spread_short: str = "SPY"
    index_spread_long: str = "^RUT"
    index_spread_short: str = "^GSPC"
    megacaps: list[str] = Field(
        default_factory=lambda: ["NVDA", "MSFT", "AAPL", "GOOGL+GOOG", "AMZN", "META"]
    )
    concentration_index: str = "^GSPC"
    equal_weight: str = "RSP"
    sectors: list[str] = Field(default_factory=lambda: list(SECTOR_SPDRS))
    rates: str = "^TNX"
    key_dates_horizon_days: int = Field(default=35, ge=1, le=366)
    ratio_chart_sessions: int = Field(default=252, ge=20, le=2520)

    @field_validator("scoreboard", "long_indexes", "megacaps", "sectors")
    @classmethod
    def _ticker_lists(cls, values: list[str]) -> list[str]:
        return _check_tickers(values)

    @field_validator(
        "spread_long",
        "spread_short",
        "index_spread_long",
        "index_spread_short",
        "concentration_index",
        "equal_weight",
        "rates",
    )
    @classmethod
    def _ticker(cls, value: str) -> str:
        _check_tickers([value])
        return value


class SubscribersSection(_Section):
    file: Path | None = BUILTIN_SUBSCRIBERS


class DatabaseSection(_Section):
    """The database URL; its password never shows: JSON dumps and repr mask it as ***."""

    url: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError("must be a database URL such as sqlite:///var/newsletter.db")
        return value

    @field_serializer("url", when_used="json")
    def _masked(self, value: str | None) -> str | None:
        return None if value is None else mask_url(value)

    def __repr_args__(self) -> Any:
        return [("url", None if self.url is None else mask_url(self.url))]


class DeliverySection(_Section):
    connections: int = Field(default=4, ge=1, le=64)
    rate_per_s: float = Field(default=0.0, ge=0)
    max_attempts: int = Field(default=5, ge=1, le=50)
    retry_backoff_s: float = Field(default=2.0, ge=0)
    max_wait_s: float = Field(default=300.0, ge=0)
    max_transient_failures: int = Field(default=20, ge=1, le=10_000)
    max_lost_replies: int = Field(default=3, ge=1, le=1000)
    max_same_refusals: int = Field(default=10, ge=2, le=10_000)
    max_run_minutes: float = Field(default=120.0, gt=0)


class DataQualitySection(_Section):
    max_daily_move: float = Field(default=0.2, gt=0, le=1)


class WebSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    preview_port: int = Field(default=8081, ge=1, le=65535)


class SignupSection(_Section):
    """The signup form `newsletter serve` publishes, with double opt-in."""

    enabled: bool = True
    confirm_days: int = Field(default=7, ge=1, le=30)
    per_client_per_hour: int = Field(default=5, ge=1, le=1000)
    per_address_per_day: int = Field(default=3, ge=1, le=20)


class SmtpSection(_Section):
    host: str = BUILTIN_SMTP_HOST
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password_env: str | None = None
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    ca_file: Path | None = None

    @property
    def is_builtin(self) -> bool:
        return self.host == BUILTIN_SMTP_HOST


_DAY = "(mon|tue|wed|thu|fri|sat|sun)"
_DAYS = re.compile(rf"^{_DAY}(-{_DAY})?(,{_DAY}(-{_DAY})?)*$")


class ScheduleSection(_Section):
    """When `newsletter schedule` builds and sends, and what makes a run too late to send."""

    day_of_week: str = "fri"
    time: str = "17:30"
    timezone: str = "America/New_York"
    misfire_grace_hours: float = Field(default=72.0, gt=0)
    deadline_after_open_minutes: int | None = 0
    require_approval: bool = False
    editor_email: str | None = Field(default=None, validate_default=True)
    retry_minutes: float = Field(default=15.0, gt=0)

    @field_validator("day_of_week")
    @classmethod
    def _day_names(cls, value: str) -> str:
        value = value.strip().lower()
        if not _DAYS.match(value):
            raise ValueError(
                "must be day names such as fri, mon-fri or tue,thu (not numbers: the "
                "scheduler counts Monday as 0, cron as 1)"
            )
        return value

    @field_validator("time", mode="before")
    @classmethod
    def _quoted_time(cls, value: object) -> object:
        if isinstance(value, int):  # YAML 1.1 reads an unquoted 20:26 as 20 * 60 + 26
            raise ValueError(
                f'must be quoted, such as "17:30": YAML reads an unquoted {value // 60}:'
                f"{value % 60:02d} as the number {value}"
            )
        return value

    @field_validator("time")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        try:
            dt.time.fromisoformat(value)
        except ValueError:
            raise ValueError("must be a 24-hour time HH:MM such as 17:30") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as America/New_York") from None
        return value

    @field_validator("editor_email")
    @classmethod
    def _editor(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("require_approval") and not value:
            raise ValueError(
                "needed with require_approval: true (the address that gets the test copy to approve)"
            )
        return bare_address(value, "editor@example.com") if value else value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def at(self) -> dt.time:
        return dt.time.fromisoformat(self.time)


class PathsSection(_Section):
    var_dir: Path = Path("var")
    notes_dir: Path = Path("issues")


class TemplatesSection(_Section):
    dir: Path = PACKAGE_DIR.parent / "templates"


class Config(_Section):
    """The whole configuration; `source` is the file it came from (None: built-in defaults).

    `model_dump_json()` is what may be printed or logged: secrets are masked there (the
    database password as ***); `database_url` is the real URL, for the engine only.
    """

    newsletter: NewsletterSection = NewsletterSection()
    market: MarketSection = MarketSection()
    stats: StatsSection = StatsSection()
    subscribers: SubscribersSection = SubscribersSection()
    database: DatabaseSection = DatabaseSection()
    smtp: SmtpSection = SmtpSection()
    dkim: DkimSection = DkimSection()
    delivery: DeliverySection = DeliverySection()
    data_quality: DataQualitySection = DataQualitySection()
    web: WebSection = WebSection()
    signup: SignupSection = SignupSection()
    schedule: ScheduleSection = ScheduleSection()
    paths: PathsSection = PathsSection()
    templates: TemplatesSection = TemplatesSection()
    bounces: BouncesSection = BouncesSection()
    source: Path | None = None

    @field_validator("dkim")
    @classmethod
    def _aligned(cls, dkim: DkimSection, info: ValidationInfo) -> DkimSection:
        """DMARC passes on DKIM only when the signing domain aligns with the From: domain."""
        newsletter = info.data.get("newsletter")
        if dkim.domain is None or not isinstance(newsletter, NewsletterSection):
            return dkim
        sender = newsletter.envelope_sender.rpartition("@")[2]
        if not dmarc_aligned(dkim.domain, sender):
            raise ValueError(
                f"domain {dkim.domain} does not align with {sender}, the domain of "
                f"newsletter.from_address, so DMARC would fail: set dkim.domain to {sender} "
                "(or a parent or subdomain of it)"
            )
        return dkim

    @property
    def issues_dir(self) -> Path:
        return self.paths.var_dir / "issues"

    @property
    def archive_dir(self) -> Path:
        """Every sent issue's web version, text and numbers (var/archive/<as-of>/)."""
        return self.paths.var_dir / "archive"

    @property
    def outbox_dir(self) -> Path:
        return self.paths.var_dir / "outbox"

    @property
    def price_store_path(self) -> Path:
        """The local price store the live provider refreshes (var/prices.db)."""
        return self.paths.var_dir / "prices.db"

    @property
    def database_url(self) -> str:
        """database.url, or the SQLite file var/newsletter.db."""
        return self.database.url or f"sqlite:///{self.paths.var_dir / 'newsletter.db'}"
