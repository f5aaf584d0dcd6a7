"""One test of "the attribution window has closed and was tracked since", the same in SQL, pandas and Python.

Reports pick their default run with it (SQL), learning keeps past runs' evidence with it (SQL), and a
report's banner and `TrackedWindow.closed` read it in Python: the three must agree to the second.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import create_engine, literal, select

from winback.reports.build import TrackedWindow
from winback.warehouse.returns import window_closed
from winback.warehouse.timeutil import epoch_days, to_epoch_days

AS_OF = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
CLOSES = AS_OF + dt.timedelta(days=30)
SECOND = dt.timedelta(seconds=1)
# (tracked_at, asked at, closed by then and tracked since)
CASES = [
    (CLOSES, CLOSES, True),  # tracked the moment it closed
    (CLOSES + dt.timedelta(days=7), CLOSES + dt.timedelta(days=7), True),
    (CLOSES - dt.timedelta(days=1), CLOSES + dt.timedelta(days=7), False),  # last tracked on day 29
    (CLOSES - 5 * SECOND, CLOSES, False),
    (CLOSES + dt.timedelta(days=7), CLOSES - dt.timedelta(hours=1), False),  # not closed yet at that moment
]


@pytest.mark.parametrize(("tracked", "by", "expected"), CASES)
def test_sql_pandas_and_python_agree(tracked: dt.datetime, by: dt.datetime, expected: bool) -> None:
    python = window_closed(to_epoch_days(AS_OF), 30, to_epoch_days(tracked), to_epoch_days(by))
    frame = pd.DataFrame({"as_of": [to_epoch_days(AS_OF)], "days": [30], "tracked": [to_epoch_days(tracked)]})
    series = window_closed(frame["as_of"], frame["days"], frame["tracked"], to_epoch_days(by))
    with create_engine("sqlite://").connect() as conn:
        as_of, at = literal(AS_OF.replace(tzinfo=None)), literal(tracked.replace(tzinfo=None))
        sql = conn.execute(select(window_closed(epoch_days(as_of), 30, epoch_days(at), to_epoch_days(by)))).scalar()
    assert (bool(python), bool(series.iloc[0]), bool(sql)) == (expected, expected, expected)


@pytest.mark.parametrize(("tracked", "expected"), [(CLOSES, True), (CLOSES - 5 * SECOND, False)])
def test_a_reports_window_and_its_banner_use_the_same_test(tracked: dt.datetime, expected: bool) -> None:
    window = TrackedWindow(AS_OF, 30, tracked)
    assert window.closed is expected
    assert bool(window_closed(0.0, window.days, window.observed_days)) is expected
