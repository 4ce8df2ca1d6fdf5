"""The synthetic retailer generator: determinism, landing contracts, identity links,
fault traces and the latent truth. Small scales only, so the module runs in seconds."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from aiwf_assets.generator import FAULTS, GenerationSummary, generate
from aiwf_assets.generator import params as P
from aiwf_assets.generator.calendar import build_calendar
from aiwf_assets.generator.simulate import initial_state, simulate_day
from aiwf_assets.generator.world import World, build_world

START = date(2026, 1, 1)
WEB_KEYS = ["order_id", "created_at", "email", "currency", "promo_code", "shipping", "items"]
ITEM_KEYS = ["sku", "qty", "unit_price"]
APP_KEYS = [
    "orderRef", "lineNo", "ts", "loyaltyId", "productCode", "quantity", "price", "currencyCode",
    "promo",
]  # fmt: skip
POS_COLUMNS = [
    "txn_id", "store_code", "local_time", "loyalty_card", "sku", "qty", "unit_price", "payment",
]  # fmt: skip
TICKET_COLUMNS = [
    "ticket_id", "opened_at", "customer_email", "customer_phone", "category", "contact_channel",
    "status", "satisfaction",
]  # fmt: skip
SESSION_SCHEMA = {
    "session_id": "string",
    "started_at": "timestamp[us, tz=UTC]",
    "email": "string",
    "device": "string",
    "pages_viewed": "int32",
    "product_views": "int32",
    "added_to_cart": "int32",
    "duration_s": "int32",
}
REFERENCE_COLUMNS = {
    "customers.csv": [
        "crm_id", "first_name", "last_name", "email", "phone", "loyalty_id", "signup_date",
        "country", "birth_year",
    ],
    "products.csv": ["sku", "name", "category", "subcategory", "list_price", "launch_date"],
    "stores.csv": ["store_code", "name", "city", "region", "opened_date"],
    "promotion_plan.csv": [
        "campaign_code", "published_on", "start_date", "end_date", "discount_pct", "categories",
    ],
}  # fmt: skip


# --- helpers --------------------------------------------------------------------------


def all_files(home: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()
    }


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def day_files(home: Path, channel: str) -> list[Path]:
    return sorted((home / "landing" / channel).glob("*.*"))


def norm_email(value: str) -> str:
    return value.strip().lower()


def norm_loyalty(value: str) -> str:
    return value.strip().upper()


def norm_phone(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    if value.strip().startswith("0") and not digits.startswith("00"):
        return "49" + digits[1:]  # national German format
    return digits


def order_identities(home: Path, days: set[date] | None = None) -> dict[str, set[str]]:
    """Identifiers (normalised) seen in the order channels, optionally only on some days."""
    seen: dict[str, set[str]] = defaultdict(set)
    for path in day_files(home, "web_orders"):
        if days is None or date.fromisoformat(path.stem) in days:
            seen["email"] |= {norm_email(o["email"]) for o in jsonl(path)}
    for path in day_files(home, "app_orders"):
        if days is None or date.fromisoformat(path.stem) in days:
            seen["loyalty"] |= {norm_loyalty(o["loyaltyId"]) for o in jsonl(path)}
    for path in day_files(home, "pos_transactions"):
        if days is None or date.fromisoformat(path.stem) in days:
            seen["loyalty"] |= {norm_loyalty(r["loyalty_card"]) for r in csv_rows(path)}
    return seen


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationSummary]:
    home = tmp_path_factory.mktemp("clean")
    return home, generate(home, seed=3, scale=0.3, days=21, churn_horizon_days=7)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationSummary]:
    home = tmp_path_factory.mktemp("faulty")
    return home, generate(home, seed=11, scale=0.2, days=12, faults=("all",))


# --- determinism -------------------------------------------------------------------------


def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    kwargs = {"seed": 5, "scale": 0.1, "days": 6, "faults": ("all",), "churn_horizon_days": 3}
    generate(tmp_path / "a", **kwargs)
    generate(tmp_path / "b", **kwargs)
    first = all_files(tmp_path / "a")
    assert first == all_files(tmp_path / "b")
    generate(tmp_path / "a", **kwargs)  # re-run into the same home
    assert all_files(tmp_path / "a") == first


def test_rerun_with_fewer_days_removes_stale_files(tmp_path: Path) -> None:
    generate(tmp_path, scale=0.05, days=4)
    generate(tmp_path, scale=0.05, days=2)
    assert [p.stem for p in day_files(tmp_path, "web_orders")] == ["2026-01-01", "2026-01-02"]
    manifest = json.loads((tmp_path / "generation.json").read_text())
    assert manifest["days"] == 2
    assert all((tmp_path / f).is_file() for f in manifest["files"])


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    generate(tmp_path / "a", seed=1, scale=0.05, days=2)
    generate(tmp_path / "b", seed=2, scale=0.05, days=2)
    a, b = all_files(tmp_path / "a"), all_files(tmp_path / "b")
    assert a.keys() - {"generation.json"} == b.keys() - {"generation.json"}
    for rel in ("landing/web_orders/2026-01-02.jsonl", "landing/reference/customers.csv"):
        assert a[rel] != b[rel]


# --- landing contracts --------------------------------------------------------------------


def test_every_channel_file_parses_with_exact_columns(
    clean: tuple[Path, GenerationSummary],
) -> None:
    home, summary = clean
    for path in day_files(home, "web_orders"):
        for order in jsonl(path):
            assert list(order) == WEB_KEYS
            assert order["items"] and all(list(item) == ITEM_KEYS for item in order["items"])
            assert order["currency"] in {"EUR", "GBP", "USD"}
            datetime.strptime(order["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    for path in day_files(home, "app_orders"):
        for line in jsonl(path):
            assert list(line) == APP_KEYS
            assert re.fullmatch(r"sku-[1-9]\d*", line["productCode"])
    for channel, columns in (("pos_transactions", POS_COLUMNS), ("crm_tickets", TICKET_COLUMNS)):
        for path in day_files(home, channel):
            rows = list(csv.reader(io.StringIO(path.read_text())))
            assert rows[0] == columns
            assert all(len(r) == len(columns) for r in rows[1:])
    for path in day_files(home, "web_sessions"):
        schema = pq.read_schema(path)
        assert {f.name: str(f.type) for f in schema} == SESSION_SCHEMA
        assert schema.names == list(SESSION_SCHEMA)
    for name, columns in REFERENCE_COLUMNS.items():
        assert csv_rows(home / "landing/reference" / name)[0].keys() == set(columns)
        header = (home / "landing/reference" / name).read_text().splitlines()[0]
        assert header.split(",") == columns
    expected = {f"landing/{ch}/{(START + timedelta(d)).isoformat()}.{ext}" for d in range(21)
                for ch, ext in (("web_orders", "jsonl"), ("app_orders", "jsonl"),
                                ("pos_transactions", "csv"), ("crm_tickets", "csv"),
                                ("web_sessions", "parquet"))}  # fmt: skip
    assert expected <= {str(p.relative_to(home)) for p in summary.files}


def test_event_times_fall_on_the_file_day(clean: tuple[Path, GenerationSummary]) -> None:
    home, _ = clean
    for path in day_files(home, "app_orders"):
        days = {datetime.fromtimestamp(line["ts"], tz=UTC).date() for line in jsonl(path)}
        assert days == {date.fromisoformat(path.stem)}
    for path in day_files(home, "pos_transactions"):
        local = {datetime.strptime(r["local_time"], "%d/%m/%Y %H:%M:%S") for r in csv_rows(path)}
        assert {t.date() for t in local} == {date.fromisoformat(path.stem)}
        assert all(9 <= t.hour < 20 for t in local)


def test_identifiers_link_across_channels(clean: tuple[Path, GenerationSummary]) -> None:
    home, _ = clean
    crm = csv_rows(home / "landing/reference/customers.csv")
    email_of_loyalty = {r["loyalty_id"]: r["email"] for r in crm if r["loyalty_id"]}
    crm_emails = {r["email"] for r in crm}
    crm_phones = {norm_phone(r["phone"]) for r in crm if r["phone"]}
    assert 0 < len(crm) - len(email_of_loyalty) < 0.2 * len(crm)  # a few have no card

    raw_web = [o["email"] for p in day_files(home, "web_orders") for o in jsonl(p)]
    web = {norm_email(e) for e in raw_web}
    raw_app = [line["loyaltyId"] for p in day_files(home, "app_orders") for line in jsonl(p)]
    assert {norm_loyalty(x) for x in raw_app} <= email_of_loyalty.keys()
    # the same people buy in the app (loyalty id) and on the web (e-mail)
    both = {x for x in map(norm_loyalty, raw_app) if email_of_loyalty[x] in web}
    assert len(both) >= 20
    # guests check out with addresses the CRM does not know
    guests = web - crm_emails
    assert 0.02 < len(guests) / len(web) < 0.5
    # spelling varies: case, whitespace
    assert any(e != e.strip() for e in raw_web) and any(e != e.lower() for e in raw_web)
    assert any(x != x.strip() for x in raw_app) and any(x.strip().islower() for x in raw_app)

    pos = [r for p in day_files(home, "pos_transactions") for r in csv_rows(p)]
    anonymous = sum(not r["loyalty_card"] for r in pos) / len(pos)
    assert 0.15 < anonymous < 0.5
    assert {r["payment"] for r in pos} == {"card", "cash", "voucher"}
    assert {
        norm_loyalty(r["loyalty_card"]) for r in pos if r["loyalty_card"]
    } <= email_of_loyalty.keys()

    tickets = [r for p in day_files(home, "crm_tickets") for r in csv_rows(p)]
    assert all(r["customer_email"] or r["customer_phone"] for r in tickets)
    assert {norm_email(r["customer_email"]) for r in tickets if r["customer_email"]} <= crm_emails
    phones = [r["customer_phone"] for r in tickets if r["customer_phone"]]
    assert {norm_phone(p) for p in phones} <= crm_phones
    assert any(p.startswith("+") and " " in p for p in phones)
    assert any(re.fullmatch(r"0\d{3}-\d{7}", p) for p in phones)

    sessions = pl.concat([pl.read_parquet(p) for p in day_files(home, "web_sessions")])
    logged_in = set(sessions["email"].drop_nulls())
    assert logged_in <= crm_emails and 0 < sessions["email"].null_count() < sessions.height


def test_prices_agree_across_channels_in_eur(clean: tuple[Path, GenerationSummary]) -> None:
    home, _ = clean
    rates = {"EUR": 1.0, "GBP": 1.17, "USD": 0.92}  # currency_rates_to_eur in sources.yaml
    shelf = {
        (p.stem, r["sku"]): float(r["unit_price"])
        for p in day_files(home, "pos_transactions")
        for r in csv_rows(p)
    }
    compared = 0
    for path in day_files(home, "web_orders"):
        for order in jsonl(path):
            for item in order["items"]:
                eur = shelf.get((path.stem, item["sku"]))
                if eur is not None:
                    assert abs(item["unit_price"] * rates[order["currency"]] - eur) < 0.01
                    compared += 1
    for path in day_files(home, "app_orders"):
        for line in jsonl(path):
            sku = f"SKU-{int(line['productCode'].removeprefix('sku-')):05d}"
            eur = shelf.get((path.stem, sku))
            if eur is not None:
                assert abs(line["price"] * rates[line["currencyCode"]] - eur) < 0.01
                compared += 1
    assert compared > 1000


# --- truth ---------------------------------------------------------------------------------


def test_churn_labels_agree_with_landing_data(clean: tuple[Path, GenerationSummary]) -> None:
    home, summary = clean
    churn = pl.read_parquet(home / "truth/churn.parquet")
    assert churn.columns == ["crm_id", "cutoff_date", "horizon_days", "churn_prob", "churned"]
    cutoff = START + timedelta(days=21 - 1 - 7)
    assert summary.churn_cutoff == cutoff
    assert set(churn["cutoff_date"]) == {cutoff} and set(churn["horizon_days"]) == {7}
    crm = {r["crm_id"]: r for r in csv_rows(home / "landing/reference/customers.csv")}
    window = order_identities(home, {cutoff + timedelta(d) for d in range(1, 8)})
    before = order_identities(home, {START + timedelta(d) for d in range(14)})

    def ordered(ids: dict[str, set[str]], crm_id: str) -> bool:
        c = crm[crm_id]
        return (
            c["email"] in ids["email"]
            or bool(c["loyalty_id"])
            and c["loyalty_id"] in ids["loyalty"]
        )

    checked = 0
    for row in churn.iter_rows(named=True):
        c = crm[row["crm_id"]]
        if row["churned"]:
            assert not ordered(window, row["crm_id"])
        elif c["loyalty_id"]:  # without a card, store purchases are invisible in landing
            assert ordered(window, row["crm_id"])
            checked += 1
        if c["loyalty_id"]:
            assert ordered(before, row["crm_id"])  # eligible: ordered by the cutoff
    assert checked > 100


def test_churn_probability_is_calibrated(clean: tuple[Path, GenerationSummary]) -> None:
    home, _ = clean
    churn = pl.read_parquet(home / "truth/churn.parquet")
    prob, churned = churn["churn_prob"].to_numpy(), churn["churned"].to_numpy()
    assert len(churn) > 500
    assert ((prob >= 0) & (prob <= 1)).all()
    assert prob[churned].mean() > prob[~churned].mean() + 0.2
    assert abs(prob.mean() - churned.mean()) < 0.05  # exact probabilities: calibrated
    customers = pl.read_parquet(home / "truth/customers.parquet")
    lapsed = set(customers.filter(pl.col("lapsed_on") <= churn["cutoff_date"][0])["crm_id"])
    assert (churn.filter(pl.col("crm_id").is_in(lapsed))["churn_prob"] == 1.0).all()


def test_demand_truth_matches_landed_units(clean: tuple[Path, GenerationSummary]) -> None:
    home, summary = clean
    demand = pl.read_parquet(home / "truth/demand.parquet")
    assert demand.columns == ["sku", "date", "expected_units", "actual_units"]
    per_day = dict(demand.group_by("date").agg(pl.col("actual_units").sum()).iter_rows())
    for d in range(21):
        day = START + timedelta(d)
        name = day.isoformat()
        web = sum(
            i["qty"] for o in jsonl(home / f"landing/web_orders/{name}.jsonl") for i in o["items"]
        )
        app = sum(x["quantity"] for x in jsonl(home / f"landing/app_orders/{name}.jsonl"))
        pos = sum(int(r["qty"]) for r in csv_rows(home / f"landing/pos_transactions/{name}.csv"))
        assert web + app + pos == per_day[day]
    ratio = demand["actual_units"].sum() / demand["expected_units"].sum()
    assert 0.9 < ratio < 1.1
    lines = summary.order_lines
    assert set(lines) == {"web", "app", "store"} and min(lines.values()) > 0


def test_truth_tables(clean: tuple[Path, GenerationSummary]) -> None:
    home, summary = clean
    customers = pl.read_parquet(home / "truth/customers.parquet")
    assert customers.columns[:5] == [
        "crm_id",
        "segment_id",
        "segment_name",
        "base_rate",
        "base_lapse_hazard",
    ]
    assert customers["lapsed_on"].dtype == pl.Date and customers.height == summary.n_customers
    assert customers["segment_name"].n_unique() == 5
    segments = pl.read_parquet(home / "truth/segments.parquet")
    assert segments["description"].null_count() == 0 and segments.height == 5
    affinities = pl.read_parquet(home / "truth/affinities.parquet")
    assert affinities.columns == ["segment_id", "category", "weight"] and affinities.height == 40
    products = pl.read_csv(home / "landing/reference/products.csv")
    subcategories = products["subcategory"].unique().to_list()
    preferences = pl.read_parquet(home / "truth/preferences.parquet")
    assert preferences["crm_id"].to_list() == customers["crm_id"].to_list()
    staple_columns = ["staple_1_sku", "staple_2_sku"]
    assert preferences.columns == ["crm_id", *P.SUBCATEGORY_NAMES, *staple_columns]
    assert set(subcategories) <= set(P.SUBCATEGORY_NAMES)
    taste = preferences.select(P.SUBCATEGORY_NAMES).to_numpy()
    assert (np.abs(taste.sum(axis=1) - 1) < 1e-5).all()
    # a few favourites: the top three subcategories hold most of a customer's taste
    assert np.median(np.sort(taste, axis=1)[:, -3:].sum(axis=1)) > 0.5
    subcategory_of = dict(products.select("sku", "subcategory").iter_rows())
    complements = pl.read_parquet(home / "truth/complements.parquet")
    assert complements.height == products.height
    for sku, complement, probability in complements.iter_rows():
        paired = P.COMPLEMENT_SUBCATEGORY[subcategory_of[sku]]
        assert subcategory_of[complement] == paired and probability == P.COMPLEMENT_PROB
    staples = preferences.select(pl.concat_list(staple_columns)).to_series().explode()
    assert staples.null_count() == 0
    assert {subcategory_of[s] for s in staples} <= set(P.STAPLE_SUBCATEGORIES)


# --- scale -------------------------------------------------------------------------------


def test_lines_scale_linearly_catalogue_sublinearly(tmp_path: Path) -> None:
    small = generate(tmp_path / "s", scale=0.1, days=5)
    large = generate(tmp_path / "l", scale=0.4, days=5)
    assert 3.0 < large.total_order_lines / small.total_order_lines < 5.5
    assert large.n_customers == 4 * small.n_customers
    assert large.n_products < 4 * small.n_products
    assert "order lines" in large.to_text()


# --- faults ------------------------------------------------------------------------------


def test_unknown_fault_names_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="allowed: malformed_rows"):
        generate(tmp_path, scale=0.05, days=1, faults=("nonsense",))
    with pytest.raises(ValueError, match="distribution_drift"):
        generate(tmp_path, scale=0.05, days=3, drift_from=START)
    assert len(FAULTS) == 12 and "all" not in FAULTS


def _records(home: Path) -> list[dict]:
    return json.loads((home / "truth/faults.json").read_text())["records"]


def _file_records(home: Path, path: str) -> tuple[list[str], list[str]]:
    """(header fields or [], raw records) of a landed text file."""
    text = (home / path).read_text()
    lines = text.split("\n")[:-1]
    if path.endswith(".csv"):
        return next(csv.reader([lines[0]])), lines[1:]
    return [], lines


FIELD = {  # role -> getter on a parsed record, per channel
    "web_orders": {
        "id": lambda r: r["order_id"], "timestamp": lambda r: r["created_at"],
        "sku": lambda r: r["items"][0]["sku"], "qty": lambda r: r["items"][0]["qty"],
        "price": lambda r: r["items"][0]["unit_price"],
    },
    "app_orders": {
        "id": lambda r: r["orderRef"], "timestamp": lambda r: r["ts"],
        "sku": lambda r: r["productCode"], "qty": lambda r: r.get("quantity", r.get("qty")),
        "price": lambda r: r["price"],
    },
    "pos_transactions": {
        "id": lambda r: r["txn_id"], "timestamp": lambda r: r["local_time"],
        "sku": lambda r: r["sku"], "qty": lambda r: r["qty"], "price": lambda r: r["unit_price"],
    },
    "crm_tickets": {
        "id": lambda r: r["ticket_id"], "timestamp": lambda r: r["opened_at"],
        "satisfaction": lambda r: r["satisfaction"],
    },
    "web_sessions": {"id": lambda r: r["session_id"], "timestamp": lambda r: r["started_at"]},
}  # fmt: skip
KIND_ROLE = {
    "quantity_as_text": ("qty", "two"), "price_as_text": ("price", "abc"),
    "satisfaction_as_text": ("satisfaction", "good"), "missing_id": ("id", None),
    "missing_sku": ("sku", None), "missing_timestamp": ("timestamp", None),
}  # fmt: skip
TIME_FORMATS = {
    "web_orders": "%Y-%m-%dT%H:%M:%SZ",
    "pos_transactions": "%d/%m/%Y %H:%M:%S",
    "crm_tickets": "%Y-%m-%d %H:%M:%S",
}


def _event_year(channel: str, value: object) -> int:
    if channel == "app_orders":
        return datetime.fromtimestamp(int(value), tz=UTC).year  # type: ignore[arg-type]
    if channel == "web_sessions":
        return value.year  # type: ignore[attr-defined]
    return datetime.strptime(str(value), TIME_FORMATS[channel]).year


def _check_row_fault(home: Path, rec: dict) -> None:
    channel, kind, rows = rec["channel"], rec["kind"], rec["rows"]
    file_year = date.fromisoformat(rec["date"]).year
    if channel == "web_sessions":
        table = pq.read_table(home / rec["path"]).to_pylist()
        parsed = [table[r - 1] for r in rows]
        raw = [json.dumps(t, default=str) for t in table]
        header: list[str] = []
    else:
        header, raw = _file_records(home, rec["path"])
        parsed = []
        for r in rows:
            if kind == "truncated_json":
                with pytest.raises(json.JSONDecodeError):
                    json.loads(raw[r - 1])
            elif header:
                fields = next(csv.reader([raw[r - 1]]))
                if kind in ("missing_column", "extra_column"):
                    assert len(fields) == len(header) + (1 if kind == "extra_column" else -1)
                else:
                    parsed.append(dict(zip(header, fields, strict=True)))
            else:
                parsed.append(json.loads(raw[r - 1]))
    if kind in ("exact_copy", "order_resent"):
        assert all(
            raw[r - 1] == raw[o - 1]
            for r, o in zip(rows, rec["detail"]["original_rows"], strict=True)
        )
        if kind == "order_resent":
            assert rows[-1] == len(raw)  # re-sent orders come at the end of the file
        return
    get = FIELD[channel]
    for row in parsed:
        if kind in KIND_ROLE:
            role, value = KIND_ROLE[kind]
            assert get[role](row) in ((None, "") if value is None else (value,))
        elif kind == "negative_quantity":
            assert int(get["qty"](row)) < 0
        elif kind == "future_timestamp":
            assert _event_year(channel, get["timestamp"](row)) >= file_year + 4
        elif kind == "unparseable_timestamp":
            value = get["timestamp"](row)
            assert isinstance(value, str)
            if channel in TIME_FORMATS:
                with pytest.raises(ValueError):
                    datetime.strptime(value, TIME_FORMATS[channel])
            else:
                assert not value.isdigit()
    if channel == "web_orders" and kind in ("missing_id", "missing_timestamp"):
        assert rec["lines_affected"] == sum(len(r["items"]) for r in parsed)


def test_each_fault_leaves_the_recorded_trace(faulty: tuple[Path, GenerationSummary]) -> None:
    home, summary = faulty
    records = _records(home)
    assert {r["fault"] for r in records} == set(FAULTS)
    assert set(summary.faults_applied) == set(FAULTS)
    kinds = set()
    for rec in records:
        kinds.add(rec["kind"])
        if rec["scope"] == "rows":
            _check_row_fault(home, rec)
    expected_kinds = {
        "truncated_json", "missing_column", "extra_column", "quantity_as_text", "price_as_text",
        "unparseable_timestamp", "missing_id", "missing_sku", "missing_timestamp",
        "negative_quantity", "future_timestamp", "exact_copy", "order_resent",
    }  # fmt: skip
    assert expected_kinds <= kinds, expected_kinds - kinds


def test_row_faults_are_rare_and_spare_the_first_day(
    faulty: tuple[Path, GenerationSummary],
) -> None:
    home, _ = faulty
    for rec in _records(home):
        assert rec["date"] != START.isoformat() or rec["scope"] == "period"
        # (a re-sent order repeats all its lines, so it is exempt)
        if (
            rec["scope"] == "rows"
            and rec["channel"] != "web_sessions"
            and rec["kind"] != "order_resent"
        ):
            n = len(_file_records(home, rec["path"])[1])
            assert len(rec["rows"]) <= max(4, 0.02 * n)


def test_file_level_faults(faulty: tuple[Path, GenerationSummary]) -> None:
    home, summary = faulty
    by_fault = defaultdict(list)
    for rec in _records(home):
        by_fault[rec["fault"]].append(rec)
    for rec in by_fault["empty_file"]:
        content = (home / rec["path"]).read_bytes()
        if rec["kind"] == "zero_bytes":
            assert content == b""
        elif rec["kind"] == "header_only":
            assert content.decode().count("\n") == 1
        else:
            assert pq.read_table(home / rec["path"]).num_rows == 0
        assert rec["lines_affected"] > 0
    (late,) = by_fault["late_file"]
    assert late["path"].startswith("incoming/late/") and (home / late["path"]).is_file()
    assert not (home / late["detail"]["landing_path"]).exists()
    (redelivered,) = by_fault["redelivered_identical"]
    assert (home / redelivered["path"]).is_file()
    drift_dates = sorted(r["date"] for r in by_fault["schema_drift"])
    for path in day_files(home, "app_orders"):
        keys = {k for line in path.read_text().splitlines() if line.endswith("}")
                for k in json.loads(line)}  # fmt: skip
        if path.stem >= drift_dates[0]:
            assert {"qty", "appVersion"} <= keys and "quantity" not in keys
        else:
            assert "quantity" in keys and "appVersion" not in keys
    first = date.fromisoformat(drift_dates[0])
    assert drift_dates == [(first + timedelta(d)).isoformat() for d in range(len(drift_dates))]
    assert drift_dates[-1] == (START + timedelta(summary.days - 1)).isoformat()  # until the end


def test_distribution_drift_shifts_demand(faulty: tuple[Path, GenerationSummary]) -> None:
    home, _ = faulty
    (rec,) = [r for r in _records(home) if r["fault"] == "distribution_drift"]
    assert rec["scope"] == "period" and rec["channel"] is None
    category = rec["detail"]["category"]
    products = pl.read_csv(home / "landing/reference/products.csv").select("sku", "category")
    demand = pl.read_parquet(home / "truth/demand.parquet").join(products, on="sku")
    share = demand.group_by(pl.col("date") >= date.fromisoformat(rec["date"])).agg(
        (pl.col("expected_units").filter(pl.col("category") == category).sum()
         / pl.col("expected_units").sum()).alias("share")
    )  # fmt: skip
    before, after = (dict(share.iter_rows())[k] for k in (False, True))
    assert after > 1.5 * before
    assert np.isfinite(before)


# --- personal preferences ------------------------------------------------------------------


def _simulated_lines(seed: int, scale: float, days: int) -> tuple[World, pl.DataFrame]:
    """Every known customer's order lines of a short run, straight from the simulation."""
    cal = build_calendar(seed, START, days, None)
    world = build_world(seed, scale, START, days)
    state = initial_state(world)
    frames = []
    for day in range(days):
        events = simulate_day(seed, world, cal, state, day)
        for channel, orders in enumerate(events.orders):
            n_lines = orders.n_lines_per_order
            frames.append(
                pl.DataFrame(
                    {
                        "customer": np.repeat(orders.customer, n_lines),
                        "order": np.repeat(np.arange(len(n_lines)), n_lines),
                        "product": orders.product,
                    }
                ).with_columns(day=pl.lit(day), channel=pl.lit(channel))
            )
    lines = pl.concat(frames).filter(pl.col("customer") >= 0)
    return world, lines.with_columns(
        subcategory=pl.Series(world.products.subcategory[lines["product"].to_numpy()])
    )


@pytest.fixture(scope="module")
def simulated() -> tuple[World, pl.DataFrame]:
    return _simulated_lines(seed=4, scale=0.3, days=30)


def test_customers_concentrate_on_their_favourite_subcategories(
    simulated: tuple[World, pl.DataFrame],
) -> None:
    world, lines = simulated
    taste = world.preferences.subcategory[: world.customers.n]
    favourites = np.argsort(-taste, axis=1)[:, :3]
    customer, subcategory = lines["customer"].to_numpy(), lines["subcategory"].to_numpy()
    own = (favourites[customer] == subcategory[:, None]).any(axis=1).mean()
    population = np.bincount(subcategory, minlength=taste.shape[1]) / len(subcategory)
    by_chance = population[favourites[customer]].sum(axis=1).mean()
    assert own > 0.4 and own > 3 * by_chance
    # the same customer keeps to the same subcategories from one half of the run to the next
    half = lines.with_columns(late=pl.col("day") >= 15)
    share = (
        half.group_by("customer", "late", "subcategory")
        .len()
        .with_columns(share=pl.col("len") / pl.col("len").sum().over("customer", "late"))
    )
    pairs = share.filter(~pl.col("late")).join(
        share.filter(pl.col("late")), on=["customer", "subcategory"], suffix="_late"
    )
    assert pairs.select(pl.corr("share", "share_late")).item() > 0.5


def test_complements_share_baskets_and_staples_are_re_bought(
    simulated: tuple[World, pl.DataFrame],
) -> None:
    world, lines = simulated
    prod, pref = world.products, world.preferences
    baskets = lines.select("day", "channel", "order", "product").unique()
    n_baskets = baskets.select("day", "channel", "order").n_unique()
    has = baskets.group_by("product").agg(pl.len().alias("with_product"))
    pairs = (
        baskets.with_columns(complement=pl.Series(prod.complement[baskets["product"].to_numpy()]))
        .join(
            baskets.rename({"product": "complement"}),
            on=["day", "channel", "order", "complement"],
            how="semi",
        )
        .group_by("product", "complement")
        .agg(pl.len().alias("together"))
        .join(has, on="product")
        .join(
            has.rename({"product": "complement", "with_product": "with_complement"}),
            on="complement",
        )
    )
    # P(complement in basket | product in basket) against P(complement in basket)
    lift = (pairs["together"] / pairs["with_product"]) / (pairs["with_complement"] / n_baskets)
    assert lift.median() > 5
    # staples: a customer's staples make up a far larger share of their lines than the
    # same products do of everybody's lines
    staples = pl.DataFrame(
        {
            "customer": np.repeat(np.arange(world.customers.n), P.STAPLES_PER_CUSTOMER),
            "product": pref.staples[: world.customers.n].ravel(),
        }
    ).unique()
    own = lines.join(staples, on=["customer", "product"], how="semi").height / lines.height
    assert own > 0.8 * P.STAPLE_LINE_SHARE
    share = lines.group_by("product").agg(share=pl.len() / lines.height)
    by_chance = (
        lines.group_by("customer")
        .len()
        .join(
            staples.join(share, on="product").group_by("customer").agg(pl.col("share").sum()),
            on="customer",
        )
        .select((pl.col("len") * pl.col("share")).sum() / pl.col("len").sum())
        .item()
    )
    assert own > 3 * by_chance


def test_expected_units_are_the_mean_of_sampled_units() -> None:
    """The truth's expected units equal the simulation's mean: sampled with 60 seeds on a
    campaign day, per product (complement add-ons and staples included)."""
    start, days = START, 30
    world = build_world(5, 0.2, start, days)
    cal = build_calendar(5, start, days, None)
    day = cal.campaigns[0].first_day
    expected, actual = np.zeros(world.products.n), np.zeros(world.products.n)
    for seed in range(60):
        events = simulate_day(seed, world, cal, initial_state(world), day)
        expected += events.expected_units
        actual += events.actual_units
    assert abs(actual.sum() / expected.sum() - 1) < 0.01
    sold = expected > 0
    # units per line are 1 + Poisson: their variance is below 1.5 x their mean
    z = (actual[sold] - expected[sold]) / np.sqrt(1.5 * expected[sold])
    assert abs(z.mean()) < 0.25 and np.abs(z).max() < 4.5
