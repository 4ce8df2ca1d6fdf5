"""aiwf: a Dagster asset-centric platform for an omni-channel retail AI workflow."""

import warnings

# Dagster marks some APIs we rely on (observable sources, backfill policies, freshness) as
# beta/preview; the pinned version is tested, so the per-decorator warnings are noise.
warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview).*")
