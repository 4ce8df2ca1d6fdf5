"""The code location: assembles each domain's definitions and the resources. No logic here."""

import dagster as dg

from aiwf_assets.cleaning.assets import defs as cleaning_defs
from aiwf_assets.ingest.assets import defs as ingest_defs
from aiwf_assets.ml.definitions import defs as ml_defs
from aiwf_assets.resources import build_resources

DOMAINS: list[dg.Definitions] = [ingest_defs, cleaning_defs, ml_defs]

defs = dg.Definitions.merge(*DOMAINS, dg.Definitions(resources=build_resources()))
