"""first_few: the one way an error names its records, "C1, C2, C3, C4, C5 and 12 more"."""

from __future__ import annotations

import pandas as pd
import pytest

from winback.listing import first_few


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (["C1", "C2"], "C1, C2"),
        ([f"C{i}" for i in range(1, 6)], "C1, C2, C3, C4, C5"),  # exactly five: nothing more to say
        ([f"C{i}" for i in range(1, 18)], "C1, C2, C3, C4, C5 and 12 more"),
        (["C9", "C1", "C9", "C1", "C2"], "C9, C1, C2"),  # repeats count once, first seen first
        (pd.Series([7, 8, 9, 10, 11, 12]), "7, 8, 9, 10, 11 and 1 more"),  # a frame column, not strings
    ],
)
def test_names_the_first_five_distinct_keys_and_counts_the_rest(keys: object, expected: str) -> None:
    assert first_few(keys) == expected  # type: ignore[arg-type]


def test_how_many_are_named_can_be_chosen() -> None:
    assert first_few(["a", "b", "c"], shown=1) == "a and 2 more"


def test_the_spend_model_names_customers_the_same_way() -> None:
    from winback.segments.model_inputs import spend_problems
    from winback.segments.scoring import _refuse_bad_spend

    rfm = pd.DataFrame({"customer_id": [f"C{i}" for i in range(8)], "frequency": 2, "mean_spend": 0.0})
    with pytest.raises(ValueError, match=r"repeat customer C0, C1, C2, C3, C4 and 3 more; "):
        _refuse_bad_spend(spend_problems(rfm))
