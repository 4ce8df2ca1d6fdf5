"""The code location: assembles each domain's definitions and the resources. No logic here.

Domains are imported as modules (not their `defs` objects) so this module holds exactly one
`Definitions` and `dagster dev -m aiwf_assets.definitions` finds it without `-a`.
"""

import dagster as dg

from aiwf_assets.automation import definitions as automation
from aiwf_assets.automation.policies import apply_automation_policies
from aiwf_assets.cleaning import assets as cleaning
from aiwf_assets.ingest import assets as ingest
from aiwf_assets.k8s import executor_for
from aiwf_assets.marts import definitions as marts
from aiwf_assets.ml import definitions as ml
from aiwf_assets.monitoring import definitions as monitoring
from aiwf_assets.resources import build_resources
from aiwf_assets.settings import get_settings

DOMAINS: list[dg.Definitions] = [
    ingest.defs, cleaning.defs, marts.defs, ml.defs, monitoring.defs, automation.defs
]

defs = apply_automation_policies(
    dg.Definitions.merge(
        *DOMAINS,
        dg.Definitions(resources=build_resources(), executor=executor_for(get_settings())),
    )
)
