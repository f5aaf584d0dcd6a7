"""The demo's model parameters: rates, seasonality, failure mix, and where customers live.

The numbers behind the module docstring of `winback.app.demo_data`; change one and the demo's shape
(orders per customer, one-time buyers, failure rates) changes with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 10_000  # customers per RNG stream: fixed so that the data do not depend on chunk_size
LAMBDA_SHAPE, LAMBDA_RATE, LAMBDA_CAP = 0.25, 3.0, 0.3
DROPOUT_A, DROPOUT_B = 0.6, 9.0
SIGNUP_GROWTH = 0.7  # log growth of the sign-up rate over the history (≈2x)
ORDER_SHAPE, SPEND_SHAPE, SPEND_RATE = 4.0, 3.5, 34.0  # mean spend scale = 4·34/2.5 ≈ 54
FAILURE_BASE = 0.0065  # per-order failure probability, ramping up towards as_of
MAX_CUSTOMERS = 9_999_999  # "C" + 7 digits

MONTH_FACTOR = np.array([0.85, 0.82, 0.92, 0.95, 0.97, 0.93, 0.90, 0.92, 0.98, 1.05, 1.45, 1.60])
WEEKDAY_FACTOR = np.array([1.04, 1.00, 0.98, 0.99, 0.93, 0.90, 1.16])  # Monday first
HOUR_FACTOR = np.array(
    [0.25, 0.15, 0.10, 0.08, 0.08, 0.12, 0.25, 0.50, 0.80, 1.00, 1.10, 1.20,
     1.35, 1.30, 1.15, 1.10, 1.10, 1.20, 1.40, 1.60, 1.70, 1.50, 1.00, 0.55]
)  # fmt: skip

CATEGORIES = ("late_delivery", "damaged_item", "wrong_item", "billing_error", "rude_staff", "outage")
CATEGORY_SHARE = np.array([0.38, 0.17, 0.12, 0.13, 0.08, 0.12])
SEVERITY_SHARE = np.array(
    [
        [0.30, 0.35, 0.20, 0.10, 0.05],  # late_delivery: mostly an annoyance
        [0.10, 0.25, 0.30, 0.22, 0.13],  # damaged_item
        [0.15, 0.30, 0.30, 0.17, 0.08],  # wrong_item
        [0.05, 0.12, 0.25, 0.30, 0.28],  # billing_error: money, skews high
        [0.20, 0.30, 0.25, 0.15, 0.10],  # rude_staff
        [0.05, 0.15, 0.25, 0.30, 0.25],  # outage: skews high
    ]
)
NEVER_RESOLVED = np.array([0.08, 0.10, 0.10, 0.15, 0.30, 0.12])
RESOLVE_MEDIAN_DAYS = np.array([1.5, 5.0, 4.0, 6.0, 3.0, 1.0])
CHURN_BOOST = np.array([0.05, 0.12, 0.25, 0.45, 0.60])  # extra dropout chance by severity, if unresolved
RESOLVED_CHURN_FACTOR = 0.35  # a resolved failure hurts about a third as much

DAMAGED = ("Item arrived damaged: cracked casing", "Box crushed in transit, item broken",
           "Item arrived with a torn seam", "Glass item arrived shattered")  # fmt: skip
WRONG = ("Received the wrong size", "Wrong colour sent", "Received someone else's order",
         "Item missing from the parcel")  # fmt: skip
BILLING = ("Charged twice for order {}", "Discount not applied to order {}",
           "Refund for order {} not received", "Charged full price for cancelled order {}")  # fmt: skip
RUDE = ("Support agent was dismissive on the phone", "Courier was rude at the door",
        "Chat agent closed the conversation without helping")  # fmt: skip
OUTAGE = ("Payment page down at checkout; charged but no confirmation",
          "App outage delayed the order confirmation for hours",
          "Order tracking unavailable for two days")  # fmt: skip


@dataclass(frozen=True)
class _Zone:
    """A time zone customers live in, with the locale, country and phone plan that go with it."""

    tz: str
    locale: str
    country_code: str  # E.164 calling code, digits only
    share: float
    phone_prefixes: tuple[int, ...]  # national prefixes (same number of digits each)
    subscriber_low: int
    subscriber_high: int
    subscriber_width: int


# Phone ranges, each checked with phonenumbers.is_valid_number (and that dropping the last digit makes the
# number invalid): GB mobiles 071-073; US area codes of each coast with exchanges 200-999; DE mobiles 015x
# with 8 digits (016x/017x also accept 7, so a dropped digit would stay valid); FR mobiles 06x except 063
# (0639 is not a mobile range) and 069 (overseas departments).
ZONES = (
    _Zone("Europe/London", "en_GB", "44", 0.40, (71, 72, 73), 0, 100_000_000, 8),
    _Zone("America/New_York", "en_US", "1", 0.18, (212, 646, 718, 917, 347, 617, 305, 404, 215, 202),
          2_000_000, 10_000_000, 7),
    _Zone("America/Los_Angeles", "en_US", "1", 0.12, (213, 310, 323, 415, 206, 503, 619, 702, 818, 408),
          2_000_000, 10_000_000, 7),
    _Zone("Europe/Berlin", "de_DE", "49", 0.15, (151, 152, 155, 156, 157, 159),
          0, 100_000_000, 8),
    _Zone("Europe/Paris", "fr_FR", "33", 0.15, (60, 61, 62, 64, 65, 66, 67, 68), 0, 10_000_000, 7),
)  # fmt: skip

FIRST_NAMES = {
    "en_GB": ("Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Mia", "Charlie", "Sophie",
              "Thomas", "Emily", "Alfie", "Grace", "Oscar", "Freya", "James", "Poppy", "William", "Ruby"),
    "en_US": ("James", "Olivia", "Michael", "Emma", "William", "Sophia", "Ethan", "Ava", "Daniel", "Isabella",
              "Noah", "Mia", "Liam", "Abigail", "Mason", "Madison", "Lucas", "Harper", "Carter", "Chloe"),
    "de_DE": ("Lukas", "Mia", "Leon", "Emma", "Finn", "Hannah", "Jonas", "Lea", "Paul", "Lena", "Felix",
              "Anna", "Jürgen", "Sören", "Björn", "Jörg", "Käthe", "Maximilian", "Sophie", "Greta"),
    "fr_FR": ("Gabriel", "Léa", "Louis", "Chloé", "Raphaël", "Zoé", "Hugo", "Inès", "Jules", "Manon",
              "Arthur", "Camille", "Lucas", "Jade", "Théo", "Louise", "Noé", "Anaïs", "Adèle", "Mathis"),
}  # fmt: skip
LAST_NAMES = {
    "en_GB": ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
              "Wright", "Evans", "Walker", "Roberts", "Thompson", "Hughes", "O'Neill"),
    "en_US": ("Johnson", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Anderson", "Lee", "Nguyen",
              "Clark", "Lewis", "Young", "Hill", "Scott", "Green", "Baker"),
    "de_DE": ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
              "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf"),
    "fr_FR": ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Lefèvre",
              "Moreau", "Laurent", "Simon", "Michel", "Garçon", "Fontaine", "Rousseau"),
}  # fmt: skip
