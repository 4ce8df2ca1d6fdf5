"""Checks computed in their asset's own step, declared so that automation keeps the others.

Dagster's automation sensor (1.13) builds a run's check selection like this: when some check of
the run's assets owns an automation condition, every check without one rides along with its
asset; otherwise, if any requested asset computes checks in its own step (they cannot be
left out), the run lists exactly those and no other. A run that rebuilt `dim_customers`
together with `model_performance` therefore ran `dbt build` without a single dbt test, and
everything gated on those blocking tests waited for good (found by operating the platform:
a corrected day never reached customer_rfm, the features, the scores or the CRM export).

A check computed in its asset's step runs whenever that step runs, so it never needs
requesting on its own: it gets a condition that is never true, `WITH_ITS_STEP`. Owning a
condition puts every run that holds it in the first case, where the dbt tests ride along.
tests/test_automation_checks.py shows both the loss and the fix.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

AC = dg.AutomationCondition

WITH_ITS_STEP = (AC.missing() & ~AC.missing()).with_label(
    "computed in its asset's step: runs with it, never on its own"
)


def in_step_check(name: str, **kwargs: Any) -> dg.AssetCheckSpec:
    """An `AssetCheckSpec` for a check its asset's own step evaluates (`check_specs=`)."""
    return dg.AssetCheckSpec(name, automation_condition=WITH_ITS_STEP, **kwargs)
