"""The code location: assembles each domain's definitions and the resources. No logic here."""

import dagster as dg

from aiwf_assets.resources import build_resources

DOMAINS: list[dg.Definitions] = []

defs = dg.Definitions.merge(*DOMAINS, dg.Definitions(resources=build_resources()))
