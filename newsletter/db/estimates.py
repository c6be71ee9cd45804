"""Dated snapshots of the mega caps' forward revenue estimates (the indicator to watch)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from newsletter.db.schema import estimate_snapshots, reader
from newsletter.models import EstimateSnapshot


def save_estimates(engine: Engine, snapshots: Sequence[EstimateSnapshot]) -> int:
    """Store dated estimate snapshots; a second snapshot on the same day replaces the first."""
    with engine.begin() as conn:
        for snap in snapshots:
            conn.execute(
                estimate_snapshots.delete().where(
                    estimate_snapshots.c.ticker == snap.ticker,
                    estimate_snapshots.c.taken_on == snap.taken_on,
                    estimate_snapshots.c.period == snap.period,
                )
            )
        if snapshots:
            conn.execute(
                estimate_snapshots.insert(),
                [
                    {
                        "ticker": s.ticker,
                        "taken_on": s.taken_on,
                        "period": s.period,
                        "revenue_avg": s.revenue_avg,
                        "analysts": s.analysts,
                        "next_earnings": s.next_earnings,
                        "shares_outstanding": s.shares,
                    }
                    for s in snapshots
                ],
            )
    return len(snapshots)


def load_estimates(engine: Engine, tickers: Sequence[str], until: date) -> list[EstimateSnapshot]:
    """Every snapshot of `tickers` taken on or before `until` (no look-ahead), oldest first."""
    with reader(engine) as conn:
        rows = conn.execute(
            sa.select(estimate_snapshots)
            .where(
                estimate_snapshots.c.ticker.in_(list(tickers)),
                estimate_snapshots.c.taken_on <= until,
            )
            .order_by(estimate_snapshots.c.taken_on)
        ).all()
    return [
        EstimateSnapshot(
            row.ticker,
            row.taken_on,
            row.period,
            row.revenue_avg,
            row.analysts,
            row.next_earnings,
            row.shares_outstanding,
        )
        for row in rows
    ]
