"""Deterministic synthetic omni-channel retailer.

`generate(home, ...)` writes the landing files described in docs/DATA_CONTRACTS.md
(`home/landing/...`), the latent truth for evaluation (`home/truth/...`), files held
back by the `late_file` fault (`home/incoming/late/...`) and `home/generation.json`.
"""

from aiwf_assets.generator.core import generate
from aiwf_assets.generator.faults import FAULTS
from aiwf_assets.generator.summary import GenerationSummary

__all__ = ["FAULTS", "GenerationSummary", "generate"]
