"""Message and offer variants: declared per segment, drawn after the holdout, sent, and compared with a fair winner."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import AS_OF, environment_sink
from sqlalchemy import Engine, select
from test_campaign_path import run_campaign
from test_report_html import by_id, make_report, parse
from test_segments_decision import POLICY, _cand

from winback.config import CampaignConfig
from winback.messages.compose import plan_rows
from winback.messages.render import Brand, build_context, render
from winback.reports.html import render_html_report
from winback.reports.variant_comparison import compare_variants, holm
from winback.segments.decision import decide
from winback.segments.holdout import run_key
from winback.warehouse.models import Decision, OutboxMessage

SUBJECT_B = "{{ customer.first_name }}, 20% for you"
TWO = {"lapsed": [{"name": "A", "offer_value": 10}, {"name": "B", "offer_value": 20, "subject": SUBJECT_B}]}


def _config(variants: dict[str, list[dict[str, object]]] | None = None, **kw: object) -> CampaignConfig:
    return CampaignConfig(variants=variants or {}, **{"holdout_share": 0.2, **kw})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the campaign file


@pytest.mark.parametrize(
    ("variants", "problem"),
    [
        ({"lapsed": [{"name": "A"}]}, "two or more variants"),
        ({"lapsed": [{"name": "A"}, {"name": "A"}]}, "each with its own name"),
        ({"aggrieved": [{"name": "A"}, {"name": "B", "template": "winback"}]}, "owed an apology"),
        ({"lapsed": [{"name": "A"}, {"name": "B", "subject": "Hi {{ customer.first_name"}]}, "not a valid template"),
        ({"lapsed": [{"name": "A"}, {"name": "B", "offer_value": -5}]}, "greater than 0"),
    ],
)
def test_bad_variants_are_refused_naming_the_key(
    tmp_path: Path, variants: dict[str, list[dict[str, object]]], problem: str
) -> None:
    import yaml

    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump({"variants": variants}))
    with pytest.raises(ValueError, match=problem) as info:
        CampaignConfig.from_yaml(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- the draw


def _decide(config: CampaignConfig, n: int = 3000, **kw: object) -> pd.DataFrame:
    frame = pd.DataFrame([_cand(f"c{i:05d}", **kw) for i in range(n)])
    return decide(frame, config, POLICY, None, run_key(config.campaign_id, AS_OF))


def test_contacted_customers_are_split_among_the_variants_after_the_holdout() -> None:
    plain = _decide(_config(budget=1e6))
    out = _decide(_config(TWO, budget=1e6))
    pd.testing.assert_series_equal(out["action"], plain["action"])  # the holdout does not move
    contacted = out["action"] == "contact"
    assert out.loc[~contacted, "variant"].isna().all()
    counts = out.loc[contacted, "variant"].value_counts()
    assert set(counts.index) == {"A", "B"} and abs(counts["A"] - counts["B"]) < 0.1 * contacted.sum()
    # each variant's offer: 10 % and 20 % of a 40 spend, under the caps (half the order, half the value)
    offers = out.loc[contacted].groupby("variant")[["offer_value", "offer_amount"]].first()
    assert offers.loc["A"].tolist() == [10.0, 4.0] and offers.loc["B"].tolist() == [20.0, 8.0]
    again = _decide(_config(TWO, budget=1e6))
    pd.testing.assert_series_equal(again["variant"], out["variant"])  # a re-run draws the same


def test_who_is_reached_does_not_depend_on_the_variant_drawn_and_the_budget_holds() -> None:
    swapped = {"lapsed": list(reversed(TWO["lapsed"]))}  # the same variants, drawn the other way round
    first = _decide(_config(TWO, budget=1500.0))
    second = _decide(_config(swapped, budget=1500.0))
    assert (first["action"] == "skip").sum() > 100, "the budget binds"
    pd.testing.assert_series_equal(first["action"], second["action"])
    assert first["variant"].ne(second["variant"]).sum() > 0
    for out in (first, second):
        assert out.loc[out["action"] == "contact", "offer_cost"].sum() <= 1500.0


# --------------------------------------------------------------------------- the message


def _queue_frame(variant: str | None) -> pd.DataFrame:
    return pd.DataFrame(
        {"customer_id": ["c1"], "segment": ["lapsed"], "channel": ["email"], "email": ["ann@example.com"],
         "phone": [None], "locale": ["en_GB"], "time_zone": ["Europe/London"], "first_name": ["Ann"],
         "variant": [variant]}
    )  # fmt: skip


def test_a_variant_sends_its_own_subject() -> None:
    config = _config(TWO)
    (b_row,) = plan_rows(_queue_frame("B"), 1, AS_OF, variants=config.variants)
    (a_row,) = plan_rows(_queue_frame("A"), 1, AS_OF, variants=config.variants)
    assert b_row["context"]["variant"] == "B" and a_row["template"] == "winback"
    ctx = build_context(b_row["context"], Brand(), "https://example.com/u")
    assert render(b_row["template"], "email", ctx).subject == "Ann, 20% for you"
    plain = render(a_row["template"], "email", build_context(a_row["context"], Brand(), "https://example.com/u"))
    assert plain.subject == "Ann, we've missed you"


def test_a_campaign_with_variants_stores_and_sends_them(demo_engine: Engine) -> None:
    config = _config(TWO, campaign_id="variants", budget=2000.0, batch_size=2000)
    later = AS_OF + dt.timedelta(days=1, hours=8)  # daytime everywhere: every message is sent now
    run = run_campaign(demo_engine, config, now=later)
    with demo_engine.connect() as conn:
        decided = pd.DataFrame(conn.execute(select(Decision.segment, Decision.action, Decision.variant)
                                            .where(Decision.run_id == run.run_id)).all())  # fmt: skip
        emailed = (OutboxMessage.status == "sent") & (OutboxMessage.channel == "email")
        sent = pd.DataFrame(conn.execute(select(OutboxMessage.subject, OutboxMessage.context).where(emailed)).all())
    lapsed = decided.loc[(decided["segment"] == "lapsed") & (decided["action"] == "contact")]
    assert set(lapsed["variant"]) == {"A", "B"}
    assert decided.loc[decided["segment"] == "aggrieved", "variant"].isna().all()
    b_subjects = {s for s, c in zip(sent["subject"], sent["context"], strict=True) if c.get("variant") == "B"}
    assert b_subjects and all(s.endswith(", 20% for you") for s in b_subjects)
    assert {r["subject"] for r in environment_sink().records()} >= b_subjects


# --------------------------------------------------------------------------- the comparison


def test_holm_adjusts_step_down() -> None:
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03])), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm(np.array([0.5])), [0.5])


def _treated(rates: dict[str, float], n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for name, rate in rates.items():
        returned = rng.random(n) < rate
        parts.append(pd.DataFrame({"segment": "lapsed", "variant": name, "returned": returned,
                                   "revenue": np.where(returned, rng.gamma(4.0, 12.0, n), 0.0)}))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def test_a_clear_winner_is_named_and_a_small_difference_is_not_yet_one() -> None:
    clear = compare_variants(_treated({"A": 0.10, "B": 0.10, "C": 0.18}, 3000))
    assert clear is not None
    assert "lapsed, return rate: C wins" in clear.verdicts[0]
    close = compare_variants(_treated({"A": 0.10, "B": 0.115}, 800))
    assert close is not None and close.verdicts[0].startswith("lapsed, return rate: no winner yet (1 comparison")
    # three pairs are three chances: the intervals are Bonferroni's, wider than one pair's would be
    pairs = clear.pairs.loc[clear.pairs["measure"] == "return rate"]
    assert len(pairs) == 3 and (pairs["p_holm"] >= pairs["p_value"]).all()
    assert compare_variants(_treated({"A": 0.1}, 10).assign(variant=None)) is None


def test_the_report_shows_the_variants_and_the_verdicts() -> None:
    comparison = compare_variants(_treated({"A": 0.10, "B": 0.18}, 3000))
    root = parse(render_html_report(make_report(variants=comparison))).root
    section = by_id(root, "variants")
    verdicts = by_id(section, "variants-verdicts").find_all("li")
    assert verdicts[0].attrs["data-winner"] == "yes"
    assert len(by_id(section, "table-variants").find_all("tr")) == 3  # header + A + B
    assert by_id(section, "table-variant-pairs").find_all("td")
