"""The report's variant section, laid out: per-variant results, the corrected pairwise tests, the verdicts.

Element ids (a contract with the tests): section ``variants``; ``<ul id="variants-verdicts">`` with one
``<li class="verdict" data-winner="yes|no">`` per segment and measure; tables ``table-variants`` and
``table-variant-pairs``.
"""

from __future__ import annotations

from typing import Any

from winback.reports.formatting import Formatter, fmt_int, fmt_pct, fmt_pp, fmt_range
from winback.reports.table_views import Cell, Header, TableView, _raw
from winback.reports.variant_comparison import VariantComparison, fmt_p


def _signed_pp(x: Any) -> str:
    return f"{x * 100:+.1f}"


def variants_view(comparison: VariantComparison, money: Formatter, conf: str) -> dict[str, Any]:
    """What the template's variant section shows."""
    headers = [
        *(Header(h) for h in ("Segment", "Variant")),
        Header("Customers", "num"),
        Header(f"Return rate\n({conf} CI)", "num"),
        Header(f"Revenue per\ncustomer ({conf} CI)", "num"),
    ]
    rows = [
        [
            Cell(str(r["segment"]), "segment", css="group"),
            Cell(str(r["variant"]), "variant", css="group"),
            Cell(fmt_int(r["n"]), "n", _raw(r["n"]), css="num"),
            Cell(fmt_pct(r["return_rate"]), "return_rate", _raw(r["return_rate"]),
                 sub=fmt_range(r["return_rate_low"], r["return_rate_high"], fmt_pct), css="num"),
            Cell(money(r["revenue_per_customer"]), "revenue_per_customer", _raw(r["revenue_per_customer"]),
                 sub=fmt_range(r["revenue_low"], r["revenue_high"], money), css="num"),
        ]
        for r in comparison.variants.to_dict("records")
    ]  # fmt: skip
    pair_headers = [
        *(Header(h) for h in ("Segment", "Measure", "Better", "Than")),
        *(Header(h, "num") for h in ("Difference\n(Bonferroni CI)", "p", "p (Holm)")),
    ]
    pair_rows = []
    for r in comparison.pairs.to_dict("records"):
        rate = r["measure"] == "return rate"
        shown = fmt_pp(r["difference"]) if rate else money(r["difference"])
        interval = fmt_range(r["low"], r["high"], _signed_pp if rate else money)
        pair_rows.append([
            Cell(str(r["segment"]), "segment", css="group"),
            Cell(str(r["measure"]), "measure"),
            Cell(str(r["better"]), "better", css="group"),
            Cell(str(r["worse"]), "worse", css="group"),
            Cell(shown, "difference", _raw(r["difference"]), sub=interval, css="num"),
            Cell(fmt_p(r["p_value"]), "p_value", _raw(r["p_value"]), css="num"),
            Cell(fmt_p(r["p_holm"]), "p_holm", _raw(r["p_holm"]), sub="significant" if r["significant"] else None,
                 css="num"),
        ])  # fmt: skip
    return {
        "verdicts": [{"text": v, "winner": "no winner yet" not in v} for v in comparison.verdicts],
        "variants": TableView("table-variants", "Variants among the treated customers", headers, rows),
        "pairs": TableView(
            "table-variant-pairs",
            "Every pair of variants, corrected for the number of comparisons",
            pair_headers,
            pair_rows,
        ),
    }
