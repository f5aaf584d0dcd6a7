"""The activity model's calibration check: a fit on the run's first customers' history, judged on what followed.

Apart from the reads (stages.reads), which Dask workers import: this one fits BG/NBD (scipy), which a
worker never needs, and runs in the campaign flow's own process while the partitions are read.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine

from winback.segments.calibration import holdout_check
from winback.segments.scoring import MIN_CUSTOMERS_TO_FIT
from winback.warehouse import queries
from winback.warehouse.source import SourceTables

# customers the calibration check fits on, whatever the run's size. On the 1M demo shop its total error was
# -9.0 % on the first 25,000 against -9.8 % on 50,000 and -9.7 % on 125,000 (the first partition, used
# before), and it took 0.2 s of one core against 1.5 s (docs/benchmark-history.md)
CALIBRATION_CUSTOMERS = 25_000


def calibrate(
    engine: Engine,
    src: SourceTables,
    as_of: dt.datetime,
    holdout_days: int = 91,
    customers: int = CALIBRATION_CUSTOMERS,
) -> dict[str, object]:
    """The activity model's calibration check on the first `customers` ids: fit to as_of - holdout_days, compare.

    A fixed slice, the same whether the run is partitioned or not, so its cost does not grow with the run.
    """
    cut = as_of - dt.timedelta(days=holdout_days)
    with src.reader(engine).connect() as conn:
        id_range = queries.first_customers(conn, src, customers)
        summary = queries.customer_summary(conn, src, cut, id_range)
        actual = queries.orders_after(conn, src, cut, as_of, id_range)
    rfm = queries.summary_to_rfm(summary, cut)
    if (rfm["frequency"] > 0).sum() < MIN_CUSTOMERS_TO_FIT:
        return {"skipped": f"fewer than {MIN_CUSTOMERS_TO_FIT} repeat buyers before {cut:%Y-%m-%d}"}
    return holdout_check(rfm, actual, holdout_days)
