"""The evaluation helpers that tie the truth to the pipeline's keys."""

import hashlib
import hmac
from pathlib import Path

import pytest

from aiwf_assets.io.warehouse import DuckDBWarehouse
from aiwf_assets.ml.evaluate import customer_key, evaluate_against_truth


def test_customer_key_is_the_cleaned_layers_pseudonym() -> None:
    key = b"secret"
    expected = hmac.new(key, b"crm:C0000042", hashlib.sha256).hexdigest()[:16]
    assert customer_key("C0000042", key) == expected


def test_evaluation_without_truth_says_what_to_do(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    with pytest.raises(FileNotFoundError, match="aiwf generate"):
        evaluate_against_truth(tmp_path, warehouse, pii_key=b"k")
