"""Mega-cap concentration: each member's contribution w * r to the index's YTD price return.

Weights are at the close of the YTD base session; returns are price returns (raw closes), as
the index itself is a price index. A share-class group ("GOOGL+GOOG") sums its classes' weights
and contributions; its return is the weight-averaged one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from newsletter.stats.returns import StatsNotes, period_return, price_at, receipt
from newsletter.weekstats import Concentration, MemberContribution

if TYPE_CHECKING:
    from datetime import date

    from newsletter.config import StatsSection
    from newsletter.models import IndexWeights, Prices, ReportDates


def member_tickers(member: str) -> tuple[str, ...]:
    """The tickers of one configured mega cap; 'GOOGL+GOOG' groups share classes of one company."""
    return tuple(member.split("+"))


def _missing(prices: Prices, ticker: str, dates: ReportDates) -> bool:
    sessions = (dates.ytd_base, dates.prev_close, dates.seven_days_base, dates.as_of)
    return ticker not in prices.raw or any(
        price_at(prices.raw[ticker], s) is None for s in sessions
    )


def _member(
    prices: Prices, weights: IndexWeights, dates: ReportDates, member: str, index_ytd: float
) -> MemberContribution:
    """One member's returns (its share classes weighted together) and part of the index's."""
    tickers = member_tickers(member)
    weight = sum(weights.weights[t] for t in tickers)

    def weighted(start: date) -> float:
        return sum(
            weights.weights[t] * period_return(prices.raw[t], start, dates.as_of) for t in tickers
        )

    contribution = weighted(dates.ytd_base)
    return MemberContribution(
        name=member,
        tickers=tickers,
        weight=weight,
        week=weighted(dates.prev_close) / weight,
        seven_day=weighted(dates.seven_days_base) / weight,
        ytd=contribution / weight,
        contribution=contribution,
        share=contribution / index_ytd,
    )


def _member_receipt(
    prices: Prices, weights: IndexWeights, dates: ReportDates, tickers: tuple[str, ...]
) -> dict[str, Any]:
    return {
        t: {
            "weight": weights.weights[t],
            "ytd": receipt(prices.raw[t], "close", dates.ytd_base, dates.as_of),
            "7D": receipt(prices.raw[t], "close", dates.seven_days_base, dates.as_of),
        }
        for t in tickers
    }


def compute_concentration(
    prices: Prices,
    spec: StatsSection,
    weights: IndexWeights | None,
    dates: ReportDates,
    *,
    notes: StatsNotes,
    receipts: dict[str, Any],
) -> Concentration | None:
    """The mega caps' contributions and shares, or None (with a note) when weights are missing."""
    if weights is None or weights.as_of != dates.ytd_base:
        notes.add(
            f"No start-of-year index weights at {dates.ytd_base.isoformat()} are bundled, so mega-cap "
            f"contributions to the index's {dates.as_of.year} return cannot be computed for this issue."
        )
        return None
    index = spec.concentration_index
    if _missing(prices, index, dates):
        notes.add(f"{index} lacks a close this issue needs: mega-cap contributions are left out")
        return None
    index_ytd = period_return(prices.raw[index], dates.ytd_base, dates.as_of)
    rows = []
    member_receipts: dict[str, Any] = {}
    for member in spec.megacaps:
        tickers = member_tickers(member)
        absent = [t for t in tickers if t not in weights.weights or _missing(prices, t, dates)]
        if absent:
            notes.add(
                f"{member} is left out of the mega caps: no weight or price for {', '.join(absent)}"
            )
            continue
        rows.append(_member(prices, weights, dates, member, index_ytd))
        member_receipts[member] = _member_receipt(prices, weights, dates, tickers)
    if not rows:
        return None
    lead = max(rows, key=lambda row: row.share)
    others = [row for row in rows if row is not lead] or [lead]
    group = sum(row.contribution for row in rows)
    receipts["concentration"] = {
        "index": receipt(prices.raw[index], "close", dates.ytd_base, dates.as_of),
        "weights": weights.source,
        "members": member_receipts,
    }
    return Concentration(
        index=index,
        index_ytd=index_ytd,
        weights_as_of=weights.as_of,
        weights_source=weights.source,
        members=tuple(rows),
        group_contribution=group,
        group_share=group / index_ytd,
        lead=lead.name,
        others_seven_day_mean=sum(row.seven_day for row in others) / len(others),
        others_ytd_mean=sum(row.ytd for row in others) / len(others),
    )
