"""A seeded, realistic demo warehouse: customers, orders, service failures and consents, plus the truth.

Why a generative model rather than random rows: winback scores customers with BG/NBD and Gamma-Gamma and
measures lift against a holdout, so the demo must be *made* by the processes those models assume, with a
known truth (`demo_truth`) to check them against.

The generative process, per customer (all rates per calendar day, averaged over the year):

* sign-up time: spread over the history, growing towards `as_of`, shaped by the same seasonality as orders;
  the first order is placed a few minutes after sign-up;
* purchase rate λ ~ Gamma(shape `LAMBDA_SHAPE`, rate `LAMBDA_RATE`), capped at `LAMBDA_CAP`: many light and
  one-time buyers, a long tail of heavy buyers; repeat orders follow a Poisson process at rate λ in
  *seasonal time* (the clock is warped by a Nov–Dec peak incl. Black Friday, a weekly and a local-hour
  pattern, so the expected count over a whole year is still λ·365);
* dropout p ~ Beta(`DROPOUT_A`, `DROPOUT_B`): after every repeat order the customer leaves for good with
  probability p (BG/NBD); a service failure on an order adds its own chance of leaving after that order,
  larger for severe failures that were still unresolved at `as_of` — so the aggrieved segment is real;
* order values: Gamma-Gamma — a spend scale per customer (the customer's expected order value) and
  Gamma(`ORDER_SHAPE`) order values around it, in currency units with 2 decimals.

With the default 730 days the parameters give ≈10.3 orders per customer (1M customers → ≈10.3M orders),
≈35 % one-time buyers, ≈73 % of customers still alive at `as_of`, ≈7 % of customers with a service failure
(≈0.75 % of orders). The median customer's λ is ≈1/70 per day (one order every ~70 days); the mean λ is
≈1/16 because the heavy-buyer tail carries it — that tail is what makes ≈10 orders per customer possible
when sign-ups are spread over the history. Repeat buyers' own mean gap (last − first order over repeat
orders) averages ≈45 days.

Storage: on SQLite timestamps are TEXT "YYYY-MM-DD HH:MM:SS.ffffff" in naive UTC (exactly what SQLAlchemy's
SQLite DateTime writes and parses), amounts REAL, booleans 0/1, loaded with `executemany` on the raw DBAPI
connection. On PostgreSQL rows go through psycopg 3 `COPY ... FROM STDIN` (`write_row`), timestamps as
timestamptz literals with "+00". Both load one transaction per chunk and build the secondary indexes after
loading, then ANALYZE.

Determinism: customers are generated in fixed blocks of `BLOCK` with one RNG stream per (seed, block), so
the data depend on (customers, seed, as_of, history_days) only — not on `chunk_size` or the database.
"""

from __future__ import annotations

from winback.app.demo_data.replay import simulate_heterogeneous_response
from winback.app.demo_data.response import ResponseSummary, simulate_campaign_response
from winback.app.demo_data.tables import demo_truth, table_counts
from winback.app.demo_data.writing import DemoDataExistsError, DemoSummary, generate_demo_warehouse

__all__ = [
    "DemoDataExistsError",
    "DemoSummary",
    "ResponseSummary",
    "demo_truth",
    "generate_demo_warehouse",
    "simulate_campaign_response",
    "simulate_heterogeneous_response",
    "table_counts",
]
