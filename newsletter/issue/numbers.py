"""How the digest writes a number, in one place: the templates (as Jinja filters), the charts
and the CLI's one-line summary all use these, so one fact reads the same wherever it is shown."""

from __future__ import annotations

from datetime import date

NOT_AVAILABLE = "n/a"
MINUS = "\u2212"


def signed_pct(value: float | None, digits: int = 2) -> str:
    """0.0163 -> '+1.63%'; None -> 'n/a'; the minus sign is a true minus for legibility."""
    return NOT_AVAILABLE if value is None else f"{value * 100:+.{digits}f}%".replace("-", MINUS)


def plain_pct(value: float | None, digits: int = 1) -> str:
    """0.253 -> '25.3%'."""
    return NOT_AVAILABLE if value is None else f"{value * 100:.{digits}f}%".replace("-", MINUS)


def signed_pp(value: float | None, digits: int = 2) -> str:
    """A difference of two returns in percentage points: 0.0989 -> '+9.89 pp'."""
    return NOT_AVAILABLE if value is None else f"{value * 100:+.{digits}f} pp".replace("-", MINUS)


def signed_bp(value: float | None) -> str:
    """A change already in basis points: -12.3 -> '-12 bp' (with a true minus sign)."""
    return NOT_AVAILABLE if value is None else f"{value:+.0f} bp".replace("-", MINUS)


def thousands(value: int) -> str:
    """6066 -> '6,066'."""
    return f"{value:,}"


def long_date(day: date) -> str:
    """date(2024, 7, 16) -> 'Tue 16 Jul 2024'."""
    return f"{day:%a} {day.day} {day:%b %Y}"


def month(day: date) -> str:
    """date(1987, 9, 10) -> 'September 1987'."""
    return f"{day:%B %Y}"
