"""How an apology names each kind of failure: specific words, never a generic "sorry for any trouble"."""

from __future__ import annotations

WHAT_WENT_WRONG = {
    "late_delivery": "arrived late",
    "damaged_item": "arrived damaged",
    "wrong_item": "arrived with the wrong item",
    "billing_error": "was billed incorrectly",
    "rude_staff": "was handled rudely by our staff",
    "outage": "was disrupted by our service outage",
}


def what_went_wrong(category: str) -> str:
    """The phrase that completes "your order … ", for a known failure category."""
    try:
        return WHAT_WENT_WRONG[category]
    except KeyError:
        raise ValueError(f"no apology wording for failure category {category!r}") from None
