"""The code location `test_secrets.py` serves from a webserver: the data layers on the
resources `build_resources` gives for the environment (prod in that test). Domains are
imported as modules so that this file holds exactly one `Definitions`."""

import dagster as dg

from aiwf_assets.cleaning import assets as cleaning
from aiwf_assets.ingest import assets as ingest
from aiwf_assets.resources import build_resources

defs = dg.Definitions.merge(ingest.defs, cleaning.defs, dg.Definitions(resources=build_resources()))
