"""segments.text: per-row templates print values exactly as the column-wise str/money helpers do."""

from __future__ import annotations

import numpy as np
import pytest

from winback.segments.text import formatted, money, str_each

VALUES = [0.1, 0.31, 2.675, -0.0, 1e-7, 12345678.9, float("nan"), float("inf"), 3, -2]


def test_percent_s_prints_as_str() -> None:
    values = np.array(VALUES, dtype=float)
    expected = ("<" + str_each(values) + ">").tolist()
    assert formatted("<%s>", values.tolist()).tolist() == expected


def test_percent_2f_prints_as_money() -> None:
    values = np.array(VALUES, dtype=float)
    expected = ("€" + money(values)).tolist()
    assert formatted("€%.2f", values.tolist()).tolist() == expected


def test_several_columns_one_row_each() -> None:
    out = formatted("%s of %s: %.2f", ["a", "b"], [1, 2], [0.5, 0.125])
    assert out.dtype == object
    assert out.tolist() == ["a of 1: 0.50", "b of 2: 0.12"]


def test_no_rows() -> None:
    assert formatted("%s", []).tolist() == []


def test_unequal_columns_refused() -> None:
    with pytest.raises(ValueError):
        formatted("%s %s", ["a", "b"], ["c"])
