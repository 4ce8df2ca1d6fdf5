"""The common recipe: the same landing -> cleaned work, written the way most projects start.

pandas DataFrames, one unpartitioned asset per layer over every day, the stock
`FilesystemIOManager` (pickle) between assets, run with `dagster.materialize`.
It is meant to be a fair, idiomatic baseline, not a straw man: vectorised
pandas where pandas is vectorised (`read_csv`, `to_datetime`, `to_numeric`,
`explode`, `json_normalize`, `drop_duplicates`, `groupby`), Python only where
projects usually write Python (a JSON-lines loop that survives malformed lines,
a CSV reader that keeps rows with the wrong field count, `Series.map` of an
HMAC for pseudonymisation).

Assets: raw_orders (web JSONL with nested items, app JSONL, store CSV, mapped
to one set of columns), raw_interactions (ticket CSV, session Parquet),
customer_lookup (identifier hash -> customer key from the CRM export), then
the cleaned layer as two multi-assets: order_lines + orders + order_quarantine,
and interactions + interaction_quarantine.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

RATES_TO_EUR = {"EUR": 1.0, "GBP": 1.17, "USD": 0.92}
STORE_TZ = "Europe/Berlin"
ORDER_COLUMNS = [
    "order_id", "line_number", "ordered_at", "customer_email", "loyalty_id", "store_code",
    "currency", "promo", "sku", "quantity", "unit_price",
]


class RecipeConfig(dg.ConfigurableResource):
    landing: str
    pii_key: str


# ----------------------------------------------------------------------------- helpers
def read_json_lines(path: Path) -> tuple[list[dict], list[dict]]:
    """Records of a JSON-lines file, and the lines that are not valid JSON."""
    good, bad = [], []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                bad.append({"source_row": number, "reasons": f"record: malformed JSON ({exc.msg})",
                            "record": line.strip()})
                continue
            record["source_row"] = number
            good.append(record)
    return good, bad


def read_csv_rows(path: Path) -> tuple[pd.DataFrame, list[dict]]:
    """A CSV as text columns; rows with the wrong number of fields are returned apart."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return pd.DataFrame(), []
        rows, bad = [], []
        for number, row in enumerate(reader, start=1):
            if len(row) == len(header):
                rows.append([*row, number])
            else:
                bad.append({"source_row": number, "record": ",".join(row),
                            "reasons": f"record: expected {len(header)} fields, got {len(row)}"})
    return pd.DataFrame(rows, columns=[*header, "source_row"]), bad


def file_errors(errors: list[dict], channel: str, path: Path) -> list[dict]:
    return [{**e, "channel": channel, "source_file": f"{channel}/{path.name}"} for e in errors]


def daily_files(landing: Path, channel: str, ext: str) -> list[Path]:
    return sorted((landing / channel).glob(f"*.{ext}"))


def pseudonymise(values: pd.Series, kind: str, key: bytes) -> pd.Series:
    def digest(value):
        if pd.isna(value) or value == "":
            return None
        return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    return values.map(digest)


def normalise_email(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip().str.lower().replace("", pd.NA)


def normalise_phone(values: pd.Series) -> pd.Series:
    digits = values.astype("string").str.replace(r"\D", "", regex=True)
    digits = digits.str.replace(r"^00", "", regex=True).str.replace(r"^0", "49", regex=True)
    return digits.replace("", pd.NA)


def canonical_sku(values: pd.Series) -> pd.Series:
    number = pd.to_numeric(values.astype("string").str.extract(r"(\d+)", expand=False),
                           errors="coerce")
    return number.map(lambda n: f"SKU-{int(n):05d}" if pd.notna(n) else None)


def add_reason(reasons: pd.Series, mask: pd.Series, text: str) -> pd.Series:
    return reasons.where(~mask, reasons + np.where(reasons == "", "", "; ") + text)


def split_quarantine(frame: pd.DataFrame, reasons: pd.Series, channel_col: str = "channel"):
    bad = reasons != ""
    quarantine = frame.loc[bad, [channel_col, "source_file", "source_row"]].copy()
    quarantine["reasons"] = reasons[bad]
    quarantine["record"] = frame.loc[bad].drop(
        columns=[c for c in ("customer_email", "email", "phone") if c in frame.columns]
    ).astype(str).to_dict("records")
    quarantine["record"] = quarantine["record"].map(json.dumps)
    return frame.loc[~bad].copy(), quarantine


# ------------------------------------------------------------------------------- raw
def _web_orders(landing: Path) -> tuple[pd.DataFrame, list[dict]]:
    frames, bad = [], []
    for path in daily_files(landing, "web_orders", "jsonl"):
        records, errors = read_json_lines(path)
        bad += file_errors(errors, "web_orders", path)
        if not records:
            continue
        orders = pd.DataFrame(records).explode("items", ignore_index=True)
        orders["line_number"] = orders.groupby("source_row").cumcount() + 1
        items = pd.json_normalize(orders["items"].map(lambda i: i if isinstance(i, dict) else {}))
        orders = pd.concat([orders.drop(columns="items"), items], axis=1)
        orders["source_file"] = f"web_orders/{path.name}"
        frames.append(orders.rename(columns={
            "created_at": "ordered_at", "email": "customer_email", "promo_code": "promo",
            "qty": "quantity",
        }))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    frame["timestamp_format"] = "iso8601"
    return frame, bad


def _app_orders(landing: Path) -> tuple[pd.DataFrame, list[dict]]:
    frames, bad = [], []
    for path in daily_files(landing, "app_orders", "jsonl"):
        records, errors = read_json_lines(path)
        bad += file_errors(errors, "app_orders", path)
        if records:
            frame = pd.DataFrame(records)
            frame["source_file"] = f"app_orders/{path.name}"
            frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    if "qty" in frame.columns:  # renamed in newer app builds
        frame["quantity"] = frame["quantity"].fillna(frame.pop("qty"))
    frame = frame.rename(columns={
        "orderRef": "order_id", "lineNo": "line_number", "ts": "ordered_at",
        "loyaltyId": "loyalty_id", "productCode": "sku", "price": "unit_price",
        "currencyCode": "currency",
    })
    frame["promo"] = frame["promo"].map({True: "promo", False: None})
    frame["timestamp_format"] = "epoch_s"
    return frame, bad


def _pos_transactions(landing: Path) -> tuple[pd.DataFrame, list[dict]]:
    frames, bad = [], []
    for path in daily_files(landing, "pos_transactions", "csv"):
        frame, errors = read_csv_rows(path)
        bad += file_errors(errors, "pos_transactions", path)
        if frame.empty:
            continue
        frame["source_file"] = f"pos_transactions/{path.name}"
        frame["line_number"] = frame.groupby("txn_id").cumcount() + 1
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.rename(columns={
        "txn_id": "order_id", "local_time": "ordered_at", "loyalty_card": "loyalty_id",
        "qty": "quantity",
    })
    frame["currency"] = "EUR"
    frame["promo"] = None
    frame["timestamp_format"] = "%d/%m/%Y %H:%M:%S"
    return frame, bad


@dg.asset(io_manager_key="io_manager")
def raw_orders(recipe: RecipeConfig) -> pd.DataFrame:
    """Every order line of every day and order channel, mapped to one set of text columns."""
    landing = Path(recipe.landing)
    frames, bad = [], []
    for channel, reader in (("web", _web_orders), ("app", _app_orders),
                            ("store", _pos_transactions)):
        frame, errors = reader(landing)
        frame["channel"] = channel
        frames.append(frame)
        bad += errors
    frame = pd.concat(frames, ignore_index=True)
    keep = [*ORDER_COLUMNS, "channel", "source_file", "source_row", "timestamp_format"]
    frame = frame.reindex(columns=keep)
    errors = pd.DataFrame(bad)
    if not errors.empty:
        errors["channel"] = errors["channel"].map(
            {"web_orders": "web", "app_orders": "app", "pos_transactions": "store"})
        frame = pd.concat([frame, errors], ignore_index=True)
    return frame


@dg.asset(io_manager_key="io_manager")
def raw_interactions(recipe: RecipeConfig) -> pd.DataFrame:
    """Service tickets and web sessions of every day."""
    landing = Path(recipe.landing)
    frames, bad = [], []
    for path in daily_files(landing, "crm_tickets", "csv"):
        frame, errors = read_csv_rows(path)
        bad += [{**e, "kind": "ticket", "source_file": f"crm_tickets/{path.name}"}
                for e in errors]
        if not frame.empty:
            frame["source_file"] = f"crm_tickets/{path.name}"
            frames.append(frame.assign(kind="ticket"))
    for path in daily_files(landing, "web_sessions", "parquet"):
        frame = pd.read_parquet(path)
        frame["source_row"] = np.arange(1, len(frame) + 1)
        frame["source_file"] = f"web_sessions/{path.name}"
        frames.append(frame.assign(kind="session"))
    frame = pd.concat([*frames, pd.DataFrame(bad)], ignore_index=True)
    frame["id"] = frame["ticket_id"].fillna(frame["session_id"])
    frame["customer_email"] = frame["customer_email"].fillna(frame["email"])
    frame["occurred_at"] = frame["opened_at"].astype("string").fillna(
        frame["started_at"].astype("string"))
    return frame.drop(columns=["ticket_id", "session_id", "email", "opened_at", "started_at"])


@dg.asset(io_manager_key="io_manager")
def customer_lookup(recipe: RecipeConfig) -> pd.DataFrame:
    """identifier hash -> customer_key, from the CRM export (first customer wins)."""
    key = recipe.pii_key.encode()
    customers = pd.read_csv(Path(recipe.landing) / "reference" / "customers.csv", dtype=str)
    customers["customer_key"] = pseudonymise(customers["crm_id"], "crm", key).str[:16]
    parts = [
        pd.DataFrame({"identifier_hash": pseudonymise(normalise(customers[col]), kind, key),
                      "customer_key": customers["customer_key"]})
        for col, kind, normalise in (
            ("email", "email", normalise_email),
            ("loyalty_id", "loyalty",
             lambda s: s.astype("string").str.strip().str.upper().replace("", pd.NA)),
            ("phone", "phone", normalise_phone),
        )
    ]
    lookup = pd.concat(parts, ignore_index=True).dropna(subset=["identifier_hash"])
    return lookup.drop_duplicates("identifier_hash")


def _customer_key(hashes: list[pd.Series], lookup: pd.DataFrame) -> pd.Series:
    """The CRM customer of the first identifier known to the CRM, else the first hash."""
    known = lookup.set_index("identifier_hash")["customer_key"]
    key = pd.Series(None, index=hashes[0].index, dtype="object")
    for series in hashes:
        key = key.fillna(series.map(known))
    for series in hashes:
        key = key.fillna(series.str[:16])
    return key


@dg.multi_asset(
    outs={"order_lines": dg.AssetOut(), "orders": dg.AssetOut(),
          "order_quarantine": dg.AssetOut()},
)
def clean_orders(recipe: RecipeConfig, raw_orders: pd.DataFrame, customer_lookup: pd.DataFrame):
    """Cast, validate (quarantine with reasons), dedupe, convert to EUR, pseudonymise."""
    key = recipe.pii_key.encode()
    frame = raw_orders
    reasons = pd.Series("", index=frame.index)
    if "reasons" in frame.columns:
        reasons = frame["reasons"].fillna("")
    parsed = reasons != ""

    ordered_at = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    for fmt, rows in frame.groupby("timestamp_format").groups.items():
        text = frame.loc[rows, "ordered_at"]
        if fmt == "epoch_s":
            value = pd.to_datetime(pd.to_numeric(text, errors="coerce"), unit="s", utc=True)
        elif fmt == "iso8601":
            value = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        else:
            local = pd.to_datetime(text, format=fmt, errors="coerce")
            value = local.dt.tz_localize(STORE_TZ, ambiguous="NaT", nonexistent="NaT") \
                .dt.tz_convert("UTC")
        ordered_at.loc[rows] = value
    quantity = pd.to_numeric(frame["quantity"], errors="coerce")
    unit_price = pd.to_numeric(frame["unit_price"], errors="coerce")
    currency = frame["currency"].astype("string").str.upper()
    sku = canonical_sku(frame["sku"])
    delivered = pd.to_datetime(frame["source_file"].str.extract(r"(\d{4}-\d{2}-\d{2})",
                                                                expand=False), utc=True)

    checks = [
        (frame["order_id"].isna(), "order_id: missing"),
        (sku.isna(), "sku: missing or not a SKU"),
        (frame["quantity"].notna() & quantity.isna(), "quantity: not an integer"),
        (quantity.isna() | (quantity <= 0), "quantity: must be > 0"),
        (frame["unit_price"].notna() & unit_price.isna(), "unit_price: not a number"),
        (unit_price.isna() | (unit_price <= 0), "unit_price: must be > 0"),
        (ordered_at.isna(), "ordered_at: missing or unparseable"),
        (ordered_at > delivered + pd.Timedelta(days=2), "ordered_at: in the future"),
        (~currency.isin(list(RATES_TO_EUR)), "currency: unknown"),
        ((frame["channel"] == "store") & frame["store_code"].isna(), "store_code: missing"),
    ]
    for mask, text in checks:
        reasons = add_reason(reasons, mask.fillna(False) & ~parsed, text)

    frame = frame.assign(
        order_id=frame["channel"] + ":" + frame["order_id"].astype("string").str.upper(),
        ordered_at=ordered_at, sku=sku, quantity=quantity, currency=currency,
        unit_price=(unit_price * currency.map(RATES_TO_EUR)).round(2),
        line_number=pd.to_numeric(frame["line_number"], errors="coerce"),
    )
    lines, quarantine = split_quarantine(frame, reasons)
    lines = lines.drop_duplicates(
        subset=["source_file", "order_id", "line_number", "sku", "quantity", "unit_price"]
    ).drop_duplicates(subset=["source_file", "order_id", "line_number"])
    email_hash = pseudonymise(normalise_email(lines["customer_email"]), "email", key)
    loyalty = lines["loyalty_id"].astype("string").str.strip().str.upper().replace("", pd.NA)
    loyalty_hash = pseudonymise(loyalty, "loyalty", key)
    lines["customer_key"] = _customer_key([email_hash, loyalty_hash], customer_lookup)
    lines["quantity"] = lines["quantity"].astype("int64")
    lines["line_amount"] = (lines["quantity"] * lines["unit_price"]).round(2)
    lines["is_promo"] = lines["promo"].notna()
    lines["order_date"] = lines["ordered_at"].dt.date
    lines = lines.drop(columns=["customer_email", "loyalty_id", "promo", "timestamp_format",
                                "currency"])
    orders = lines.groupby("order_id", as_index=False).agg(
        channel=("channel", "first"), customer_key=("customer_key", "first"),
        ordered_at=("ordered_at", "min"), store_code=("store_code", "first"),
        n_lines=("line_number", "size"), order_total=("line_amount", "sum"),
        has_promo=("is_promo", "any"), source_file=("source_file", "first"),
    )
    return lines, orders, quarantine


@dg.multi_asset(
    outs={"interactions": dg.AssetOut(), "interaction_quarantine": dg.AssetOut()},
)
def clean_interactions(
    recipe: RecipeConfig, raw_interactions: pd.DataFrame, customer_lookup: pd.DataFrame
):
    """Tickets and sessions validated, deduplicated and linked to customers."""
    key = recipe.pii_key.encode()
    frame = raw_interactions
    reasons = frame["reasons"].fillna("") if "reasons" in frame.columns else \
        pd.Series("", index=frame.index)
    parsed = reasons != ""
    occurred_at = pd.to_datetime(frame["occurred_at"], format="mixed", utc=True, errors="coerce")
    satisfaction = pd.to_numeric(frame["satisfaction"], errors="coerce")
    checks = [
        (frame["id"].isna(), "id: missing"),
        (occurred_at.isna(), "occurred_at: missing or unparseable"),
        (frame["satisfaction"].notna() & (frame["satisfaction"] != "")
         & ~satisfaction.between(1, 5), "satisfaction: not 1..5"),
    ]
    for mask, text in checks:
        reasons = add_reason(reasons, mask.fillna(False) & ~parsed, text)
    frame = frame.assign(occurred_at=occurred_at, satisfaction=satisfaction,
                         interaction_id=frame["kind"] + ":" + frame["id"].astype("string"))
    kept, quarantine = split_quarantine(frame, reasons, channel_col="kind")
    kept = kept.drop_duplicates(subset=["interaction_id"])
    email_hash = pseudonymise(normalise_email(kept["customer_email"]), "email", key)
    phone_hash = pseudonymise(normalise_phone(kept["customer_phone"]), "phone", key)
    kept["customer_key"] = _customer_key([email_hash, phone_hash], customer_lookup)
    kept["interaction_date"] = kept["occurred_at"].dt.date
    return kept.drop(columns=["customer_email", "customer_phone", "id"]), quarantine


ASSETS = [raw_orders, raw_interactions, customer_lookup, clean_orders, clean_interactions]


def run(landing: Path, storage: Path, pii_key: str) -> dg.ExecuteInProcessResult:
    """Materialise every recipe asset once, pickling outputs under `storage`."""
    return dg.materialize(
        ASSETS,
        resources={
            "recipe": RecipeConfig(landing=str(landing), pii_key=pii_key),
            "io_manager": dg.FilesystemIOManager(base_dir=str(storage)),
        },
    )
