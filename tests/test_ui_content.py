"""What the UI shows comes from the definitions: column schemas, table names, owners,
kinds, the observing sensor, dbt descriptions and model plots short enough to be shown
inline (the browser tests see them rendered)."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from aiwf_assets.cleaning.contracts import MODELS
from aiwf_assets.definitions import defs
from aiwf_assets.ml.plots import INLINE_LIMIT, segment_profile_plot, ui_length
from aiwf_assets.ml.segmentation import segment_features

GRAPH = defs.resolve_asset_graph()
CLEANED = ["orders", "order_lines", "interactions", "quarantine", "customers",
           "customer_identity", "products", "stores", "promotion_plan"]


@pytest.mark.parametrize("table", CLEANED)
def test_cleaned_tables_show_their_contract_as_column_schema(table: str) -> None:
    node = GRAPH.get(dg.AssetKey(table))
    assert node.metadata["dagster/table_name"] == f"cleaned.{table}"
    columns = {c.name: c for c in node.metadata["dagster/column_schema"].columns}
    assert list(columns) == list(MODELS[table].to_schema().columns)
    assert all(c.description for c in columns.values()), "every column is described"


def test_contract_constraints_reach_the_column_schema() -> None:
    columns = {
        c.name: c for c in GRAPH.get(dg.AssetKey("order_lines")).metadata[
            "dagster/column_schema"
        ].columns
    }
    assert columns["quantity"].constraints.other == ["not_equal_to(0)"]  # < 0: a return
    assert columns["customer_key"].constraints.nullable
    assert not columns["sku"].constraints.nullable


def test_landing_assets_have_owners_kinds_and_their_observing_sensor() -> None:
    landing = [k for k in GRAPH.get_all_asset_keys() if k.path[0].startswith("landing_")]
    assert landing
    sensor = defs.resolve_sensor_def("landing_observation_sensor")
    observed = defs.resolve_job_def(sensor.job_name).asset_layer.executable_asset_keys
    for key in landing:
        node = GRAPH.get(key)
        assert node.is_observable
        assert node.owners == ["team:data-platform"]
        assert node.kinds
        assert key in observed


def test_dbt_descriptions_are_the_yaml_descriptions_without_raw_sql() -> None:
    dbt_keys = [k for k in GRAPH.get_all_asset_keys() if "dbt" in GRAPH.get(k).kinds]
    assert len(dbt_keys) > 10
    for key in dbt_keys:
        description = GRAPH.get(key).description or ""
        assert description and "Raw SQL" not in description and "```" not in description
    assert GRAPH.get(dg.AssetKey("fct_orders")).description.startswith("Every order once")


def test_the_quarantine_overview_counts_every_day_by_kind_of_reason() -> None:
    import datetime as dt

    import polars as pl

    from aiwf_assets.cleaning.quarantine import by_day, by_reason

    day1, day2 = dt.date(2026, 1, 2), dt.date(2026, 1, 5)
    quarantine = pl.DataFrame(
        {
            "partition_date": [day1, day1, day2],
            "channel": ["web_orders", "pos_transactions", "web_orders"],
            "reasons": [
                "quantity: must be > 0 (-3); sku: missing",
                "ordered_at: missing for a 2026-01-02 delivery",
                "quantity: must be > 0 (-1)",
            ],
        }
    )
    reasons = {(r["channel"], r["reason"]): r for r in by_reason(quarantine).to_dicts()}
    assert reasons[("web_orders", "quantity: must be > 0")] == {
        "channel": "web_orders", "reason": "quantity: must be > 0", "rows": 2, "days": 2,
        "first_day": day1, "last_day": day2,
    }
    assert reasons[("pos_transactions", "ordered_at: missing")]["rows"] == 1
    assert len(reasons) == 3
    days = by_day(quarantine).to_dicts()
    assert days == [
        {"partition_date": day1, "web_orders": 1, "pos_transactions": 1},
        {"partition_date": day2, "web_orders": 1, "pos_transactions": 0},
    ]


# the segmentation features of the packaged sources' channels
SEGMENT_FEATURES = segment_features(["web", "app", "store"])


def profile(descriptions: list[str]) -> pl.DataFrame:
    """A segment profile as segmentation.describe_segments gives it (means per segment)."""
    k = len(descriptions)
    means = {c: [float(i * (j + 1) % 7) for i in range(k)] for j, c in enumerate(SEGMENT_FEATURES)}
    means["age"] = [41.0] * k  # the same in every segment: no spread
    means["sessions_90d"] = [None] + [3.0] * (k - 1)  # a segment without sessions
    return pl.DataFrame({"segment": list(range(k)), **means, "description": descriptions})


@pytest.mark.parametrize("k", [2, 5, 8])
def test_the_segment_heat_map_is_shown_inline(k: int) -> None:
    words = "high value, frequent, web-first, lapsing, promotion-driven, contacts support"
    markdown = segment_profile_plot(
        profile([f"{words} (segment {i})" for i in range(k)]), SEGMENT_FEATURES
    )
    assert ui_length(markdown) < INLINE_LIMIT  # the UI shows it without "[Show Markdown]"
    lines = markdown.splitlines()
    assert lines[0] == "**Segment profile (standardised means)**"
    at = lines.index("| segment | " + " | ".join(SEGMENT_FEATURES) + " |")
    assert set(lines[at + 1].replace("|", "").split()) == {"---"}
    rows = lines[at + 2:]
    assert len(rows) == k and all(r.count("|") == len(SEGMENT_FEATURES) + 2 for r in rows)
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    age = SEGMENT_FEATURES.index("age") + 1
    assert all(row[age].startswith("\u2b1c") for row in cells)  # no spread: white
    sessions = [row[SEGMENT_FEATURES.index("sessions_90d") + 1] for row in cells]
    assert sessions[0] == "n/a" and "n/a" not in sessions[1:]
    assert any("\U0001f7e5" in c for row in cells for c in row)  # red: above average
    assert any("\U0001f7e6" in c for row in cells for c in row)  # blue: below
    if k == 2:  # room for the descriptions and the values
        assert cells[1][0] == f"{words} (segment 1)" and cells[1][1].endswith("+1.0")
