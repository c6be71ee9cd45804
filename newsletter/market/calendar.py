"""NYSE sessions from exchange_calendars: as-of resolution and the digest's period bases.

Definitions (PRODUCT.md): the as-of session is the last NYSE session on or before the requested
date; the week's base is the last session of the previous calendar week; YTD's is the last session
of the previous year; 1M/3M/1Y's the last session on or before the same calendar date one, three
or twelve months earlier; "seven days" is the last session on or before the date a week earlier.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import exchange_calendars as xcals
import pandas as pd

from newsletter.models import ReportDates

NYSE = "XNYS"


class TradingCalendar:
    """The NYSE calendar over a fixed range of dates."""

    def __init__(self, start: date, end: date) -> None:
        self._calendar = xcals.get_calendar(NYSE, start=pd.Timestamp(start), end=pd.Timestamp(end))

    @property
    def sessions(self) -> pd.DatetimeIndex:
        sessions: pd.DatetimeIndex = self._calendar.sessions
        return sessions

    def session_on_or_before(self, day: date) -> date:
        """The last NYSE session on or before `day` (holidays and weekends step back)."""
        session = self._calendar.date_to_session(pd.Timestamp(day), direction="previous")
        return session.date()  # type: ignore[no-any-return]

    def week_last_session(self, moment: datetime) -> date | None:
        """The last session of `moment`'s week (Monday to `moment`) that had closed by `moment`.

        This is the session a weekly issue sent at `moment` covers: Thursday when Friday is a
        holiday, and None in a week without sessions. An early close counts from its real time.
        """
        day = moment.date()
        monday = day - timedelta(days=day.weekday())
        sessions = self._calendar.sessions_in_range(pd.Timestamp(monday), pd.Timestamp(day))
        for session in reversed(sessions):
            if self._calendar.session_close(session).to_pydatetime() <= moment:
                return session.date()  # type: ignore[no-any-return]
        return None

    def next_open(self, session: date) -> datetime:
        """When the session after `session` opens (UTC): the end of a weekly issue's useful life."""
        following = self._calendar.next_session(pd.Timestamp(session))
        return self._calendar.session_open(following).to_pydatetime()  # type: ignore[no-any-return]

    def report_dates(self, as_of: date) -> ReportDates:
        """The period bases for an issue whose as-of session is `as_of`."""
        monday = as_of - timedelta(days=as_of.weekday())

        def months_back(months: int) -> date:
            day = (pd.Timestamp(as_of) - pd.DateOffset(months=months)).date()
            return self.session_on_or_before(day)

        return ReportDates(
            as_of=as_of,
            prev_close=self.session_on_or_before(monday - timedelta(days=1)),
            seven_days_base=self.session_on_or_before(as_of - timedelta(days=7)),
            month_base=months_back(1),
            quarter_base=months_back(3),
            ytd_base=self.session_on_or_before(date(as_of.year - 1, 12, 31)),
            year_base=months_back(12),
        )
