"""Who a customer is to the models: the populations every metric is reported for.

A customer_key is *identified* when it is a CRM customer (dim_customers'
`is_known_to_crm`), and a *guest* otherwise (a web shopper known only by an e-mail
or phone hash). The two differ in what the pipeline knows about them (tenure,
age, a long history), so a model that works for one may not for the other, and
the CRM export only acts on a population where the model has earned it (see
`serving.action_gate`). `aiwf evaluate` adds a split the pipeline cannot make
itself, because it needs the truth: identified customers who have already
lapsed for good vs those who have not yet.
"""

from __future__ import annotations

import polars as pl

IDENTIFIED = "identified"
GUEST = "guest"
POPULATIONS = (IDENTIFIED, GUEST)
# evaluation only (the truth says who has lapsed)
NOT_YET_LAPSED = "identified, not yet lapsed"
LAPSED = "identified, lapsed"
ALL_SCORED = "all scored"


def identified_keys(customers: pl.DataFrame) -> pl.Series:
    """The customer_keys of dim_customers that are CRM customers."""
    return customers.filter(pl.col("is_known_to_crm"))["customer_key"]


def with_population(frame: pl.DataFrame, identified_keys: pl.Series) -> pl.DataFrame:
    """`frame` with a `population` column: identified if its customer_key is a CRM key."""
    known = frame["customer_key"].is_in(identified_keys.implode())
    return frame.with_columns(
        population=pl.when(known).then(pl.lit(IDENTIFIED)).otherwise(pl.lit(GUEST))
    )


def metric_name(metric: str, population: str) -> str:
    """How a per-population metric is named in model cards and asset metadata."""
    return f"{metric}[{population}]"
