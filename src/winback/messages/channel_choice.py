"""Which channel reaches a customer: consent first, then a usable address, then their preference.

Email is preferred when both are allowed and the customer expressed no preference: it costs less and
carries the full apology; SMS is for those who asked for it or can be reached no other way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

REQUIRED = ("customer_id", "has_email", "has_phone", "email_consent", "sms_consent", "preferred_channel")


def choose_channels(reach: pd.DataFrame, suppressed: pd.DataFrame | None = None) -> pd.DataFrame:
    """Add `channel` (email | sms | None) and `channel_reason` (why none, when none).

    Parameters
    ----------
    reach
        One row per customer: has_email, has_phone, email_consent, sms_consent, preferred_channel.
    suppressed
        winback's own opt-outs and bounces: customer_id, channel.
    """
    missing = [c for c in REQUIRED if c not in reach.columns]
    if missing:
        raise ValueError(f"choose_channels: required columns missing: {', '.join(missing)}")
    out = reach.copy(deep=False)  # copy-on-write: the new columns never reach `reach`, its columns are shared
    blocked = {"email": pd.Series(False, index=out.index), "sms": pd.Series(False, index=out.index)}
    if suppressed is not None and not suppressed.empty:
        for channel in ("email", "sms"):
            ids = suppressed.loc[suppressed["channel"] == channel, "customer_id"]
            blocked[channel] = out["customer_id"].isin(ids)
    email_ok = out["has_email"] & out["email_consent"] & ~blocked["email"]
    sms_ok = out["has_phone"] & out["sms_consent"] & ~blocked["sms"]
    wants_sms = out["preferred_channel"] == "sms"
    out["channel"] = np.select([sms_ok & wants_sms, email_ok, sms_ok], ["sms", "email", "sms"], default=None)
    any_consent = (out["email_consent"] & out["has_email"]) | (out["sms_consent"] & out["has_phone"])
    out["channel_reason"] = np.select(
        [
            out["channel"].notna(),
            ~(out["email_consent"] | out["sms_consent"]),
            ~any_consent,
        ],
        [None, "no consent on any channel", "no address for a consented channel"],
        default="opted out on every consented channel",
    )
    return out
