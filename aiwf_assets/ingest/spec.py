"""Source declarations: the `sources.yaml` vocabulary, loaded and validated.

A source entry says how one landing export maps onto a *contract* (the column
set the cleaning code understands). Contracts live here, in code, because the
cleaning logic depends on them; everything about a particular export (field
names, formats, time zones, decimal separators) lives in YAML, so a new export
of a known kind needs only a YAML entry. See docs/SOURCES.md.
"""

from __future__ import annotations

import codecs
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import yaml

ColumnType = Literal["string", "int", "float", "bool", "timestamp", "date"]
PiiKind = Literal["email", "phone", "loyalty", "name"]
Format = Literal["jsonl", "csv", "parquet"]

COLUMN_TYPES: tuple[str, ...] = ("string", "int", "float", "bool", "timestamp", "date")
FORMATS: tuple[str, ...] = ("jsonl", "csv", "parquet")
NORMALISERS: tuple[str, ...] = ("strip", "lower", "upper", "digits", "integer")
TIMESTAMP_KEYWORDS: tuple[str, ...] = ("iso8601", "epoch_s")
DEFAULT_SOURCES_PATH = Path(__file__).resolve().parent.parent / "sources.yaml"

_CANONICAL_RE = re.compile(r"^(?P<prefix>[^%]*)%0(?P<width>[1-9]\d?)d(?P<suffix>[^%]*)$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


# Fixed vocabularies of contract columns (also enforced by the cleaning rules and the
# pandera contracts): what a source's own words are recoded onto (`recode`).
TICKET_CATEGORIES = ("delivery", "return", "product", "billing", "account")
CONTACT_CHANNELS = ("phone", "email", "chat")
DEVICES = ("desktop", "mobile", "tablet")
VOCABULARIES: dict[str, dict[str, tuple[str, ...]]] = {
    "tickets": {"category": TICKET_CATEGORIES, "contact_channel": CONTACT_CHANNELS},
    "sessions": {"device": DEVICES},
}
# per daily contract, the column that times a record (its delivery day's events)
EVENT_TIMES: dict[str, str] = {
    "order_lines": "ordered_at",
    "tickets": "opened_at",
    "sessions": "started_at",
}


class SourceSpecError(ValueError):
    """sources.yaml is wrong; the message names the file, the entry and the key."""


@dataclass(frozen=True)
class Contract:
    """The columns a kind of source maps onto, and what cleaning needs from them."""

    name: str
    columns: Mapping[str, ColumnType]
    mandatory: tuple[str, ...]  # must be mapped; always required (non-null) at cleaning
    key: tuple[str, ...]  # business key: a repeat within a partition is a duplicate
    pii: Mapping[str, PiiKind] = field(default_factory=dict)
    daily: bool = True  # daily partitions (landing path has {date}) vs reference snapshot
    # Columns describing the whole group a `sequence` numbers (the order), not one line:
    # a line's identity within its order is its other columns (see ingest.parse._number_sequences).
    shared: tuple[str, ...] = ()
    # Columns one record may hold several values of (a CRM customer with two e-mails, listed
    # on two rows): rows under one key that differ only here are one record, not a key clash.
    multi_valued: tuple[str, ...] = ()
    # The column that groups lines into an order, and the order-level columns its lines must
    # agree on (cleaning.transforms.split_orders quarantines an order whose lines do not).
    order_key: str | None = None
    order_level: tuple[str, ...] = ()

    @property
    def vocabularies(self) -> dict[str, tuple[str, ...]]:
        """The values each column with a fixed vocabulary accepts (the contract's code, not
        a declaration: kept out of the dataclass, so out of every source's fingerprint)."""
        return VOCABULARIES.get(self.name, {})

    @property
    def event_time(self) -> str | None:
        """The column that times a record (`ordered_at`, `opened_at`, `started_at`); None for
        reference contracts. Contract code, not a declaration: out of the fingerprint."""
        return EVENT_TIMES.get(self.name)


CONTRACTS: dict[str, Contract] = {
    c.name: c
    for c in (
        Contract(
            name="order_lines",
            columns={
                "order_id": "string",
                "line_number": "int",
                "ordered_at": "timestamp",
                "customer_email": "string",
                "customer_phone": "string",
                "loyalty_id": "string",
                "store_code": "string",
                "sku": "string",
                "quantity": "int",
                "unit_price": "float",
                "currency": "string",
                "promo_code": "string",
                "promo_flag": "bool",
                "payment": "string",
                "line_status": "string",
                "original_order_id": "string",
            },
            mandatory=(
                "order_id",
                "line_number",
                "ordered_at",
                "sku",
                "quantity",
                "unit_price",
                "currency",
            ),
            key=("order_id", "line_number"),
            pii={"customer_email": "email", "customer_phone": "phone", "loyalty_id": "loyalty"},
            shared=(
                "order_id",
                "ordered_at",
                "customer_email",
                "customer_phone",
                "loyalty_id",
                "store_code",
                "currency",
                "payment",
                "promo_code",
                "original_order_id",
            ),
            # not payment (split tender), promo_code (per-line discounts), original_order_id
            # (one return receipt may return items of several orders), currency (a
            # marketplace order's lines may be priced in their sellers' currencies)
            order_key="order_id",
            order_level=(
                "store_code", "customer_email", "customer_phone", "loyalty_id", "ordered_at"
            ),
        ),
        Contract(
            name="tickets",
            columns={
                "ticket_id": "string",
                "opened_at": "timestamp",
                "customer_email": "string",
                "customer_phone": "string",
                "category": "string",
                "contact_channel": "string",
                "status": "string",
                "satisfaction": "int",
            },
            mandatory=("ticket_id", "opened_at", "category"),
            key=("ticket_id",),
            pii={"customer_email": "email", "customer_phone": "phone"},
        ),
        Contract(
            name="sessions",
            columns={
                "session_id": "string",
                "started_at": "timestamp",
                "customer_email": "string",
                "device": "string",
                "pages_viewed": "int",
                "product_views": "int",
                "added_to_cart": "int",
                "duration_s": "int",
            },
            mandatory=("session_id", "started_at", "device"),
            key=("session_id",),
            pii={"customer_email": "email"},
        ),
        Contract(
            name="customers",
            columns={
                "crm_id": "string",
                "first_name": "string",
                "last_name": "string",
                "email": "string",
                "phone": "string",
                "loyalty_id": "string",
                "signup_date": "date",
                "country": "string",
                "birth_year": "int",
            },
            mandatory=("crm_id",),
            key=("crm_id",),
            multi_valued=("email", "phone", "loyalty_id"),
            pii={
                "first_name": "name",
                "last_name": "name",
                "email": "email",
                "phone": "phone",
                "loyalty_id": "loyalty",
            },
            daily=False,
        ),
        Contract(
            name="products",
            columns={
                "sku": "string",
                "name": "string",
                "category": "string",
                "subcategory": "string",
                "list_price": "float",
            },
            mandatory=("sku", "name", "category", "list_price"),
            key=("sku",),
            daily=False,
        ),
        Contract(
            name="exchange_rates",
            columns={"date": "date", "currency": "string", "rate_to_eur": "float"},
            mandatory=("date", "currency", "rate_to_eur"),
            key=("date", "currency"),
            daily=False,
        ),
        Contract(
            name="stores",
            columns={
                "store_code": "string",
                "name": "string",
                "city": "string",
                "region": "string",
                "opened_date": "date",
            },
            mandatory=("store_code", "name"),
            key=("store_code",),
            daily=False,
        ),
        Contract(
            name="promotion_plan",
            columns={
                "campaign_code": "string",
                "published_on": "date",
                "start_date": "date",
                "end_date": "date",
                "discount_pct": "float",
                "categories": "string",
            },
            mandatory=(
                "campaign_code",
                "published_on",
                "start_date",
                "end_date",
                "discount_pct",
                "categories",
            ),
            # codes repeat (a season's name and its discount): a campaign is its code and start
            key=("campaign_code", "start_date"),
            daily=False,
        ),
    )
}


# In `within`: the day of the row's own order time (`ordered_at`, read as cleaning reads it,
# in its timezone), for ids a till restarts every day.
ORDER_DAY = "order_day"


@dataclass(frozen=True)
class ColumnSpec:
    """How one contract column is obtained (parse time) and read (cleaning time)."""

    name: str
    type: ColumnType
    # parse time: exactly one way to get a value
    source: tuple[str, ...] = ()  # `from` then `aliases`: dotted paths, first present wins
    constant: str | None = None
    # line number within the rows sharing this column, derived from their content
    sequence: str | None = None
    # the value made unique within these other columns' values: `S01/R0001` for a receipt
    # number a till repeats in every store (`within: [store_code]`); ORDER_DAY stands for
    # the day of the row's order time (`within: [store_code, order_day]`: `S01/2026-01-05/R0001`)
    within: tuple[str, ...] = ()
    explode_index: bool = False  # position of the item in the exploded list
    # cleaning time
    required: bool = False
    timestamp_format: str | None = None
    timezone: str | None = None
    normalise: tuple[str, ...] = ()
    canonical: str | None = None
    pattern: str | None = None  # string columns: the value (after normalisation) must match
    # "." or ",": the decimal mark (the other one groups thousands); None: not declared
    decimal: str | None = None
    # string columns: (source word, contract value) pairs, applied after `normalise`
    # (`(("web", "email"), ("mail", "email"))`); a word not listed is kept as it is
    recode: tuple[tuple[str, str], ...] = ()
    # float columns: the currency sign the export writes with its amounts (`$4.50`, `-$0.50`,
    # `($1.00)`, `4,50 €`); values written without it read as before
    symbol: str | None = None
    # `unit_price` of order lines: the field is the line's total (quantity x price, as an
    # item sales report writes `Net Sales`); the unit price is it divided by the quantity
    line_total: bool = False
    # int and float columns: how the export writes a negative number besides `-5.25`:
    # `trailing_minus` (`5,25-`, SAP), `parentheses` (`(5.25)`, accounting)
    negatives: tuple[str, ...] = ()
    # timestamp columns read `from` a date field: the field holding the time of day, read
    # as `<date> <time>` (a till writing `Date` and `Time` apart)
    time_from: str | None = None


@dataclass(frozen=True)
class ExplodeSpec:
    field: str  # top-level list field, one raw row per item
    index: str | None  # contract column receiving the 1-based item position
    columns: tuple[ColumnSpec, ...]  # `from` paths relative to the item


@dataclass(frozen=True)
class ReturnsSpec:
    """How an order source marks returns and cancellations (any of these marks one)."""

    order_prefix: str | None = None  # order ids starting with this (e.g. `C`) are returns
    negative_quantity: bool = False  # a negative quantity is a return
    status_values: tuple[str, ...] = ()  # line_status values (after normalisation)


@dataclass(frozen=True)
class OrderAmount:
    """Money an export writes once per order (shipping, an order-level discount), read as a
    line of the order: product code `code` of kind `kind`, quantity 1, unit price the
    field's value, negated with `negate` (a discount written as a positive amount)."""

    field: str
    code: str
    kind: str
    negate: bool = False
    # money given back (Shopify's Refunded Amount): a return line of the order (negative
    # amount), not part of the total the export states for it
    refund: bool = False


@dataclass(frozen=True)
class SourceSpec:
    name: str
    contract: Contract
    format: Format
    landing: str  # path under the landing dir; `{date}` (in a file or folder name) is the day
    columns: tuple[ColumnSpec, ...]  # record-level columns
    explode: ExplodeSpec | None = None
    channel: str | None = None  # order channels: the cleaned `channel` value
    delimiter: str = ","
    # csv/jsonl: the codec of the bytes (Python's name, e.g. cp1252); parsed as UTF-8 after
    encoding: str = "utf-8"
    ignore: tuple[str, ...] = ()  # source fields deliberately unmapped (not drift)
    # order sources: product codes that are not merchandise (postage, fees, ...) -> their kind
    non_merchandise: Mapping[str, str] = field(default_factory=dict)
    returns: ReturnsSpec | None = None
    phone_region: str | None = None  # region of phone numbers written without a country code
    # order sources: orders placed online (a web session can convert into one); tills: false
    online: bool = True
    # daily sources: when the business day a file is named by ends, "HH:MM" local time in
    # the event time's zone (a bar's "04:00": a sale at 01:45 on the 6th is the 5th's)
    day_ends_at: str | None = None
    # order sources: columns an export writes on an order's first row only (Shopify: one row
    # per line item, Currency and Total on the first). Parsing gives the order's other rows
    # the value, the rows of an order found by their place in the file; order_id comes
    # first (ingest.parse._filled_per_order). Empty: every row stands on its own.
    once_per_order: tuple[str, ...] = ()
    # order sources: order-level money fields read as lines of their own (their codes are
    # in non_merchandise); parsing adds them (ingest.parse._order_amount_lines)
    order_amounts: tuple[OrderAmount, ...] = ()
    # csv: a regular expression (Python's `re.search`) the export's trailing summary line(s)
    # match (`^Total,`): not data; a file whose last line does not match is refused
    # (ingest.parse._without_footer). None: every line after the header is data.
    footer: str | None = None
    # order sources: the export's field stating each order's total (Shopify's `Total`): an
    # order whose lines (with its `order_amounts`) do not add up to it is quarantined as a
    # whole (ingest.parse._with_checked_totals). None: no total is checked.
    order_total: str | None = None
    # order sources whose lines may be given away (a loyalty reward, a free gift, a comped
    # coffee): a line at a unit price of 0 is a line, not an error
    free_lines: bool = False

    @property
    def all_columns(self) -> tuple[ColumnSpec, ...]:
        """Every declared contract column, record-level first, in declaration order."""
        return self.columns + (self.explode.columns if self.explode else ())

    @property
    def raw_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.all_columns)

    @property
    def order_fields(self) -> tuple[str, ...]:
        """The export's order-level money fields read besides the columns: each of
        `order_amounts` and the `order_total` (dotted for nested JSON fields)."""
        total = () if self.order_total is None else (self.order_total,)
        return tuple(a.field for a in self.order_amounts) + total

    @property
    def time_fields(self) -> tuple[str, ...]:
        """The fields read as the time of day of a date column (`time_from`)."""
        return tuple(c.time_from for c in self.columns if c.time_from is not None)

    @property
    def refund_codes(self) -> tuple[str, ...]:
        """The product codes of the lines made from `refund` order amounts: return lines of
        money given back, not part of the order's stated total."""
        return tuple(a.code for a in self.order_amounts if a.refund)

    @property
    def business_day_end(self) -> dt.time | None:
        """`day_ends_at` as a time of day; None: the file's day is the calendar day."""
        return None if self.day_ends_at is None else dt.time.fromisoformat(self.day_ends_at)

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.all_columns if c.name == name), None)

    @property
    def product_key_pattern(self) -> str | None:
        """The regular expression every product code of this source matches (whole value):
        the sku column's `pattern`, else the one its `canonical` form implies."""
        col = self.column("sku")
        if col is None:
            return None
        if col.pattern is not None:
            return col.pattern
        if col.canonical is not None:
            prefix, width, suffix = canonical_parts(col.canonical)
            return f"{re.escape(prefix)}[0-9]{{{width},}}{re.escape(suffix)}"
        return None

    def landing_path(self, partition: str | None = None) -> str:
        """Landing path relative to the landing dir (`partition` as YYYY-MM-DD)."""
        if "{date}" in self.landing:
            if partition is None:
                raise ValueError(f"source {self.name!r} is daily: pass the partition date")
            return self.landing.replace("{date}", partition)
        return self.landing


@dataclass(frozen=True)
class SourcesConfig:
    sources: Mapping[str, SourceSpec]
    currency_rates_to_eur: Mapping[str, float]
    origin: str = "sources.yaml"
    # packaged (or earlier) sources switched off by an overlay (`enabled: false`,
    # `replace_packaged: true`): declared nowhere now, they deliver nothing by intent
    disabled: frozenset[str] = frozenset()

    def __getitem__(self, name: str) -> SourceSpec:
        try:
            return self.sources[name]
        except KeyError:
            raise KeyError(
                f"{self.origin}: no source {name!r}; declared: {', '.join(sorted(self.sources))}"
            ) from None

    def by_contract(self, *contracts: str) -> dict[str, SourceSpec]:
        """Sources mapping onto any of `contracts`, e.g. by_contract("tickets", "sessions")."""
        return {n: s for n, s in self.sources.items() if s.contract.name in contracts}

    @property
    def order_channels(self) -> tuple[str, ...]:
        """Cleaned channel names (web, app, store, ...) of the order sources, in declaration
        order (overlaid sources after the packaged ones): the order of per-channel columns."""
        return tuple(s.channel for s in self.sources.values() if s.channel is not None)

    @property
    def online_channels(self) -> tuple[str, ...]:
        """The order channels whose orders are placed online (what a session converts into)."""
        return tuple(
            s.channel for s in self.sources.values() if s.channel is not None and s.online
        )

    @property
    def exchange_rates(self) -> SourceSpec | None:
        """The dated exchange-rate file (contract exchange_rates), if one is declared."""
        return next(iter(self.by_contract("exchange_rates").values()), None)

    @property
    def free_line_channels(self) -> tuple[str, ...]:
        """The order channels whose sources declare `free_lines` (a line at 0 is a line)."""
        return tuple(
            s.channel for s in self.sources.values() if s.channel is not None and s.free_lines
        )

    @property
    def product_key_patterns(self) -> dict[str, str]:
        """Product-key pattern by order channel (channels whose codes are free are left out)."""
        return {
            s.channel: pattern
            for s in self.sources.values()
            if s.channel is not None and (pattern := s.product_key_pattern) is not None
        }


# --------------------------------------------------------------------------- loading


def load_sources(path: str | Path | None = None) -> SourcesConfig:
    """Load and validate the sources: the packaged aiwf_assets/sources.yaml, overlaid by
    the file or folder of YAML files named by `AIWF_SOURCES` (entries of the same name
    replace packaged ones, rates are merged). `path` loads that one file instead."""
    if path is not None:
        return parse_documents([_read(Path(path))])
    from aiwf_assets.settings import get_settings  # settings import nothing of ours

    return declared_sources(get_settings().sources_path)


def declared_sources(overlay: Path | None) -> SourcesConfig:
    """The packaged sources.yaml overlaid by `overlay` (the AIWF_SOURCES file or folder;
    None: the packaged ones alone). `build_definitions` loads them this way from its
    Settings, so the asset graph never depends on the process's environment."""
    return parse_documents([_read(DEFAULT_SOURCES_PATH), *overlay_files(overlay)])


def overlay_files(path: Path | None) -> list[tuple[str, str]]:
    """(origin, text) of the AIWF_SOURCES file, or of every *.yaml/*.yml in that folder by
    name; none when unset or the folder has none (an empty ConfigMap mount)."""
    if path is None:
        return []
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        return [_read(f) for f in files]
    if not path.exists():
        raise SourceSpecError(f"AIWF_SOURCES={path}: no such file or folder")
    return [_read(path)]


def _read(path: Path) -> tuple[str, str]:
    try:
        return str(path), path.read_text(encoding="utf-8")
    except OSError as e:
        raise SourceSpecError(f"{path}: cannot read the sources file ({e.strerror})") from e


def parse_sources(text: str, origin: str = "sources.yaml") -> SourcesConfig:
    """Validate sources YAML text; every error names `origin` and the offending key."""
    return parse_documents([(origin, text)])


# Reference snapshots cleaning finds by source name, so at most one source of each.
NAMED_REFERENCES = ("customers", "products", "stores", "promotion_plan")


def parse_documents(documents: list[tuple[str, str]]) -> SourcesConfig:
    """Validate (origin, text) documents, later ones overlaying earlier ones: a source of
    the same name is replaced, rates of the same currency too; `enabled: false` on an entry
    removes that source, `replace_packaged: true` every source of the earlier documents.
    Errors name the origin."""
    rates: dict[str, float] = {}
    sources: dict[str, SourceSpec] = {}
    origins: dict[str, str] = {}
    disabled: set[str] = set()
    for i, (origin, text) in enumerate(documents):
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise SourceSpecError(f"{origin}: not valid YAML ({e})") from e
        top = _mapping(doc, origin, "the document")
        _known_keys(
            top, {"version", "currency_rates_to_eur", "sources", "replace_packaged"}, origin,
            "top level",
        )
        if top.get("version") != 1:
            raise SourceSpecError(f"{origin}: version: expected 1, got {top.get('version')!r}")
        first = i == 0
        replace = top.get("replace_packaged", False)
        if not isinstance(replace, bool) or (replace and first):
            raise SourceSpecError(
                f"{origin}: replace_packaged: true or false, in an AIWF_SOURCES file only"
            )
        if replace:
            disabled |= set(sources)
            sources.clear()
            origins.clear()
        if first or "currency_rates_to_eur" in top:
            rates |= _rates(top.get("currency_rates_to_eur"), origin, base=first)
        entries = _mapping(top.get("sources", {} if not first else None), origin, "sources")
        if first and not entries:
            raise SourceSpecError(f"{origin}: sources: declare at least one source")
        for name, body in entries.items():
            name, where = str(name), f"{origin}: sources.{name}"
            enabled = body.get("enabled", True) if isinstance(body, dict) else True
            if not isinstance(enabled, bool):
                raise SourceSpecError(f"{where}.enabled: true or false")
            if enabled is False and set(body) == {"enabled"}:
                if name not in sources and name not in disabled:
                    raise SourceSpecError(
                        f"{where}.enabled: no source {name!r} to switch off; declared: "
                        f"{', '.join(sorted(sources))}"
                    )
            else:
                entry = {k: v for k, v in body.items() if k != "enabled"} if isinstance(
                    body, dict
                ) else body
                spec = _source(name, entry, where)
            if enabled:
                sources[name] = spec
                origins[name] = origin
                disabled.discard(name)
            else:
                sources.pop(name, None)
                origins.pop(name, None)
                disabled.add(name)
    origin = " + ".join(o for o, _ in documents)
    if not sources:
        raise SourceSpecError(f"{origin}: every source is switched off; declare at least one")
    by_channel: dict[str, str] = {}
    for name, spec in sources.items():
        if spec.channel is None:
            continue
        if spec.channel in by_channel:
            raise SourceSpecError(
                f"{origins[name]}: sources.{name}.channel: {spec.channel!r} is already the "
                f"channel of source {by_channel[spec.channel]!r}"
            )
        by_channel[spec.channel] = name
    for name, spec in sources.items():
        if spec.contract.name in NAMED_REFERENCES and name != spec.contract.name:
            raise SourceSpecError(
                f"{origins[name]}: sources.{name}.contract: a {spec.contract.name} source must "
                f"be named {spec.contract.name!r} (cleaning reads the {spec.contract.name} "
                f"snapshot from the source of that name; under another name it would publish "
                f"cleaned.{spec.contract.name} empty): rename the entry to "
                f"{spec.contract.name} (it then replaces the packaged one)"
            )
    rate_files = [n for n, s in sources.items() if s.contract.name == "exchange_rates"]
    if len(rate_files) > 1:
        raise SourceSpecError(
            f"{origins[rate_files[1]]}: sources.{rate_files[1]}: only one exchange_rates "
            f"source may be declared (also {rate_files[0]!r})"
        )
    return SourcesConfig(
        sources=sources, currency_rates_to_eur=rates, origin=origin,
        disabled=frozenset(disabled),
    )


def _rates(value: Any, origin: str, *, base: bool = True) -> dict[str, float]:
    rates = _mapping(value, origin, "currency_rates_to_eur")
    out: dict[str, float] = {}
    for code, rate in rates.items():
        if not (isinstance(code, str) and re.fullmatch(r"[A-Z]{3}", code)):
            raise SourceSpecError(
                f"{origin}: currency_rates_to_eur: {code!r} is not an ISO 4217 code"
            )
        if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
            raise SourceSpecError(
                f"{origin}: currency_rates_to_eur.{code}: must be a positive number, got {rate!r}"
            )
        out[code] = float(rate)
    if out.get("EUR", None if base else 1.0) != 1.0:
        raise SourceSpecError(f"{origin}: currency_rates_to_eur: EUR must be declared as 1")
    return out


_SOURCE_KEYS = {
    "contract",
    "channel",
    "format",
    "landing",
    "delimiter",
    "encoding",
    "ignore",
    "columns",
    "explode",
    "non_merchandise",
    "returns",
    "phone_region",
    "online",
    "day_ends_at",
    "once_per_order",
    "order_amounts",
    "footer",
    "order_total",
    "free_lines",
}
_ORDER_AMOUNT_KEYS = {"code", "kind", "negate", "refund"}
_RETURNS_KEYS = {"order_prefix", "negative_quantity", "status"}
# channel names whose per-channel columns would clash with a fixed column
_RESERVED_CHANNELS = {"n": "n_orders", "promo": "promo_share"}


def _source(name: str, body: Any, where: str) -> SourceSpec:
    if not _NAME_RE.match(name):
        raise SourceSpecError(f"{where}: source names are lower_snake_case")
    entry = _mapping(body, where, "the entry")
    _known_keys(entry, _SOURCE_KEYS, where, "entry")
    contract_name = _required(entry, "contract", where)
    if contract_name not in CONTRACTS:
        raise SourceSpecError(
            f"{where}.contract: unknown contract {contract_name!r}; known: {', '.join(CONTRACTS)}"
        )
    contract = CONTRACTS[contract_name]
    fmt = _required(entry, "format", where)
    if fmt not in FORMATS:
        raise SourceSpecError(f"{where}.format: {fmt!r} is not one of {', '.join(FORMATS)}")
    landing = _required(entry, "landing", where)
    if not isinstance(landing, str) or landing.startswith("/") or ".." in landing:
        raise SourceSpecError(f"{where}.landing: a path relative to the landing dir")
    if contract.daily != ("{date}" in landing):
        need = "must contain" if contract.daily else "must not contain"
        raise SourceSpecError(
            f"{where}.landing: contract {contract.name} {need} '{{date}}' (got {landing!r})"
        )
    if landing.count("{date}") > 1 or {"", "."} & set(landing.split("/")):
        raise SourceSpecError(
            f"{where}.landing: '{{date}}' once, in a file or a folder name, and no empty or '.'"
            f" folder name (got {landing!r}; e.g. pos/{{date}}.csv or pos/dt={{date}}/export.csv)"
        )
    channel = entry.get("channel")
    if contract.name == "order_lines":
        if not (isinstance(channel, str) and _NAME_RE.match(channel)):
            raise SourceSpecError(
                f"{where}.channel: order sources need a lower-case channel name (web, app, ...)"
            )
    elif channel is not None:
        raise SourceSpecError(f"{where}.channel: only order_lines sources have a channel")
    if channel in _RESERVED_CHANNELS:
        raise SourceSpecError(
            f"{where}.channel: {channel!r} is reserved (its columns {channel}_orders / "
            f"{channel}_share would clash with {_RESERVED_CHANNELS[channel]})"
        )
    delimiter = entry.get("delimiter", ",")
    if "delimiter" in entry and fmt != "csv":
        raise SourceSpecError(f"{where}.delimiter: only csv sources have a delimiter")
    if not (isinstance(delimiter, str) and len(delimiter) == 1 and delimiter not in '"\r\n'):
        raise SourceSpecError(f"{where}.delimiter: one character, got {delimiter!r}")
    encoding = _encoding(entry, fmt, where)
    ignore = _str_list(entry.get("ignore", []), f"{where}.ignore")

    columns = _columns(entry.get("columns"), contract, f"{where}.columns", allow_sequence=True)
    explode = _explode(entry.get("explode"), contract, fmt, f"{where}.explode")
    orders_only = [
        k
        for k in (
            "non_merchandise", "returns", "online", "once_per_order", "order_amounts",
            "order_total", "free_lines",
        )
        if k in entry
    ]
    if orders_only and contract.name != "order_lines":
        raise SourceSpecError(f"{where}.{orders_only[0]}: only order_lines sources have it")
    non_merchandise = _non_merchandise(entry.get("non_merchandise", {}), f"{where}.non_merchandise")
    order_amounts = _order_amounts(entry.get("order_amounts"), columns, explode, where)
    for amount in order_amounts:
        kind = non_merchandise.setdefault(amount.code, amount.kind)
        if kind != amount.kind:
            raise SourceSpecError(
                f"{where}.order_amounts.{amount.field}.code: {amount.code!r} is non_merchandise "
                f"of kind {kind!r}, not {amount.kind!r}"
            )
    returns = _returns(entry.get("returns"), f"{where}.returns")
    online = entry.get("online", True)
    if not isinstance(online, bool):
        raise SourceSpecError(f"{where}.online: true or false, got {online!r}")
    free_lines = entry.get("free_lines", False)
    if not isinstance(free_lines, bool):
        raise SourceSpecError(f"{where}.free_lines: true or false, got {free_lines!r}")
    day_ends_at = None
    if "day_ends_at" in entry:
        if not contract.daily:
            raise SourceSpecError(
                f"{where}.day_ends_at: only daily sources (order_lines, tickets, sessions) have "
                "a business day"
            )
        day_ends_at = _day_ends_at(entry["day_ends_at"], f"{where}.day_ends_at")
    phone_region = entry.get("phone_region")
    if phone_region is not None:
        if not (isinstance(phone_region, str) and re.fullmatch(r"[A-Z]{2}", phone_region)):
            raise SourceSpecError(
                f"{where}.phone_region: a two-letter region code such as GB or DE, "
                f"got {phone_region!r}"
            )
        if "phone" not in contract.pii.values():
            raise SourceSpecError(f"{where}.phone_region: contract {contract.name} has no phone")
    spec = SourceSpec(
        name=name,
        contract=contract,
        format=cast(Format, fmt),
        landing=landing,
        columns=columns,
        explode=explode,
        channel=channel,
        delimiter=delimiter,
        encoding=encoding,
        ignore=ignore,
        non_merchandise=non_merchandise,
        returns=returns,
        phone_region=phone_region,
        online=online,
        day_ends_at=day_ends_at,
        once_per_order=_once_per_order(entry.get("once_per_order", []), columns, where),
        order_amounts=order_amounts,
        footer=_footer(entry["footer"], fmt, f"{where}.footer") if "footer" in entry else None,
        order_total=(
            _order_total(entry["order_total"], columns, f"{where}.order_total")
            if "order_total" in entry
            else None
        ),
        free_lines=free_lines,
    )
    _check_coverage(spec, where)
    if returns is not None and returns.status_values and spec.column("line_status") is None:
        raise SourceSpecError(f"{where}.returns.status: map the line_status column first")
    return spec


def _once_per_order(value: Any, columns: tuple[ColumnSpec, ...], where: str) -> tuple[str, ...]:
    """The columns written on an order's first row only, order_id first: the rows of an
    order are found by it, so it must be read from the file; a line's own columns (sku,
    quantity, unit_price, line_number) cannot be copied onto the order's other lines."""
    where = f"{where}.once_per_order"
    names = _str_list(value, where)
    if not names:
        return ()
    declared = {c.name: c for c in columns}
    order_id = declared.get("order_id")
    if order_id is None or not order_id.source:
        raise SourceSpecError(
            f"{where}: the rows of an order are found by their order_id, which must be read "
            "from the file (columns.order_id: {from: <the order number field>, ...})"
        )
    contract = CONTRACTS["order_lines"]
    line_level = [c for c in contract.mandatory if c not in contract.shared]
    for name in names:
        col = declared.get(name)
        if name in line_level:
            raise SourceSpecError(
                f"{where}: {name} is a line's own value, not the order's: it is not copied "
                f"onto the order's other rows (order-level columns: "
                f"{', '.join(c for c in contract.columns if c not in line_level)})"
            )
        if col is None or not col.source:
            raise SourceSpecError(
                f"{where}: {name!r} is not a column of this source read with from "
                f"(declared: {', '.join(c.name for c in columns if c.source)})"
            )
    return tuple(dict.fromkeys(("order_id", *names)))


def _order_amounts(
    value: Any, columns: tuple[ColumnSpec, ...], explode: ExplodeSpec | None, where: str
) -> tuple[OrderAmount, ...]:
    """{source field: {code, kind, negate}}: order-level money read as lines of the order.

    The lines are numbered by content with the order's others, so line_number must be a
    `sequence` of order_id; a source that explodes a list of items numbers them after the
    items, so its items must be numbered (line_number an item column). Their code must read
    as itself after the sku column's `normalise` (cleaning looks non-merchandise codes up
    after normalising)."""
    where = f"{where}.order_amounts"
    if value is None:
        return ()
    body = _mapping(value, where, "order_amounts")
    declared = {c.name: c for c in (*columns, *(explode.columns if explode else ()))}
    line_number, sku = declared.get("line_number"), declared.get("sku")
    if explode is not None:
        # the amounts' lines are numbered after the order's items
        if line_number is None or line_number not in explode.columns:
            raise SourceSpecError(
                f"{where}: the amounts become lines numbered after the order's items: number "
                "the items (explode.index: line_number, or an item field)"
            )
    elif line_number is None or line_number.sequence != "order_id":
        raise SourceSpecError(
            f"{where}: the amounts become lines numbered with the order's other lines by "
            "content: declare columns.line_number: {sequence: order_id, type: int}"
        )
    out: list[OrderAmount] = []
    for field_name, entry in body.items():
        at = f"{where}.{field_name}"
        if not (isinstance(field_name, str) and field_name.strip()):
            raise SourceSpecError(f"{where}: keys are the export's field names, got {field_name!r}")
        item = _mapping(entry, at, "an order amount")
        _known_keys(item, _ORDER_AMOUNT_KEYS, at, "order amount")
        code, kind = _required(item, "code", at), _required(item, "kind", at)
        if not (isinstance(code, str | int) and str(code).strip() == str(code) != ""):
            raise SourceSpecError(f"{at}.code: the product code the line gets, e.g. SHIPPING")
        code = str(code)
        steps = sku.normalise if sku is not None else ()
        if _normalised(code, steps) != code:
            raise SourceSpecError(
                f"{at}.code: {code!r} reads as {_normalised(code, steps)!r} after the sku "
                f"column's normalise {list(steps)}: write it that way"
            )
        if not (isinstance(kind, str) and _NAME_RE.match(kind)) or kind == "product":
            raise SourceSpecError(
                f"{at}.kind: a lower_snake_case kind other than 'product' (postage, discount, "
                f"fee, tax, ...), got {kind!r}"
            )
        negate = item.get("negate", False)
        if not isinstance(negate, bool):
            raise SourceSpecError(f"{at}.negate: true or false, got {negate!r}")
        refund = item.get("refund", False)
        if not isinstance(refund, bool):
            raise SourceSpecError(f"{at}.refund: true or false, got {refund!r}")
        if refund and negate:
            raise SourceSpecError(
                f"{at}: a refund is the money given back as a positive amount (it becomes a "
                "return line); negate is for money taken off the order's charge"
            )
        out.append(OrderAmount(field_name, code, kind, negate, refund))
    codes = [a.code for a in out]
    if len(set(codes)) != len(codes):
        raise SourceSpecError(f"{where}: each amount needs a code of its own, got {codes}")
    return tuple(out)


def _order_total(value: Any, columns: tuple[ColumnSpec, ...], where: str) -> str:
    """The export's field stating an order's total (`Total`, `total_price`). An order is its
    rows with one order id (an exploded record's items), so order_id must be read from the
    file."""
    if not (isinstance(value, str) and value.strip() == value != ""):
        raise SourceSpecError(
            f"{where}: the export's field stating each order's total (e.g. Total), got {value!r}"
        )
    order_id = next((c for c in columns if c.name == "order_id"), None)
    if order_id is None or not order_id.source:
        raise SourceSpecError(
            f"{where}: an order is its rows with one order id, which must be read from the "
            "file (columns.order_id: {from: <the order number field>, ...})"
        )
    mapped = {p for c in columns for p in c.source}
    if value in mapped:
        raise SourceSpecError(
            f"{where}: {value!r} is mapped to a column; the total is read on its own"
        )
    return value


def _footer(value: Any, fmt: str, where: str) -> str:
    """The regular expression a csv export's trailing summary lines match (`^Total,`)."""
    if fmt != "csv":
        raise SourceSpecError(f"{where}: only csv sources have a footer")
    if not (isinstance(value, str) and value):
        raise SourceSpecError(
            f"{where}: a regular expression the summary line(s) ending the file match (e.g. "
            f"'^Total,'), got {value!r}"
        )
    try:
        compiled = re.compile(value)
    except re.error as e:
        raise SourceSpecError(f"{where}: not a regular expression ({e}): {value!r}") from None
    if compiled.search("") is not None:
        raise SourceSpecError(
            f"{where}: {value!r} matches an empty line, so any line: the rows at the end of "
            "every file would be taken for the footer; match the footer's own text (e.g. "
            "'^Total,')"
        )
    return value


def _encoding(entry: Mapping[str, Any], fmt: str, where: str) -> str:
    """The declared codec under Python's own name (`latin-1` -> `iso8859-1`, `UTF8` ->
    `utf-8`), so writing the default out changes nothing."""
    if "encoding" not in entry:
        return "utf-8"
    name = entry["encoding"]
    if fmt == "parquet":
        raise SourceSpecError(f"{where}.encoding: only csv and jsonl sources have an encoding")
    try:
        info = codecs.lookup(name) if isinstance(name, str) else None
    except LookupError:
        info = None
    if info is None or not info._is_text_encoding:
        raise SourceSpecError(
            f"{where}.encoding: {name!r} is not a text encoding Python knows (e.g. utf-8,"
            " cp1252, latin-1, utf-16; https://docs.python.org/3/library/codecs.html"
            "#standard-encodings)"
        )
    return info.name


# A business day ends by noon of the next calendar day: one running longer is mostly that day.
LATEST_DAY_END = dt.time(12, 0)


def _day_ends_at(value: Any, where: str) -> str:
    """The business day's end as "HH:MM" (`4:30` and `04:30` alike), 00:00 to 12:00."""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value) if isinstance(value, str) else None
    ends = dt.time(int(match[1]), int(match[2])) if match else None
    if ends is None or ends > LATEST_DAY_END:
        unquoted = (
            " (YAML reads an unquoted 4:30 as the number 270: write the time in quotes)"
            if isinstance(value, int) and not isinstance(value, bool) else ""
        )
        raise SourceSpecError(
            f'{where}: the local time the business day ends, "HH:MM" from "00:00" to '
            f'"{LATEST_DAY_END:%H:%M}" (e.g. "04:00": a sale at 01:45 belongs to the day '
            f"before), got {value!r}{unquoted}"
        )
    return f"{ends:%H:%M}"


def _non_merchandise(value: Any, where: str) -> dict[str, str]:
    """{product code: kind}, e.g. {POST: postage, "BANK CHARGES": fee}."""
    body = _mapping(value, where, "non_merchandise")
    out: dict[str, str] = {}
    for code, kind in body.items():
        if not (isinstance(code, str | int) and str(code).strip()):
            raise SourceSpecError(f"{where}: product codes are non-empty text, got {code!r}")
        if not (isinstance(kind, str) and _NAME_RE.match(kind)) or kind == "product":
            raise SourceSpecError(
                f"{where}.{code}: a lower_snake_case kind other than 'product' "
                f"(postage, fee, discount, adjustment, ...), got {kind!r}"
            )
        out[str(code).strip()] = kind
    return out


def _returns(value: Any, where: str) -> ReturnsSpec | None:
    if value is None:
        return None
    body = _mapping(value, where, "returns")
    _known_keys(body, _RETURNS_KEYS, where, "returns")
    prefix = body.get("order_prefix")
    if prefix is not None and not (isinstance(prefix, str) and prefix.strip() == prefix != ""):
        raise SourceSpecError(f"{where}.order_prefix: the text return order ids start with")
    negative = body.get("negative_quantity", False)
    if not isinstance(negative, bool):
        raise SourceSpecError(f"{where}.negative_quantity: true or false")
    status = _str_list(body.get("status", []), f"{where}.status")
    if prefix is None and not negative and not status:
        raise SourceSpecError(
            f"{where}: say how returns are marked: order_prefix, negative_quantity or status"
        )
    return ReturnsSpec(order_prefix=prefix, negative_quantity=negative, status_values=status)


def _explode(value: Any, contract: Contract, fmt: str, where: str) -> ExplodeSpec | None:
    if value is None:
        return None
    if fmt == "csv":
        raise SourceSpecError(f"{where}: csv rows are flat; explode needs jsonl or parquet")
    body = _mapping(value, where, "explode")
    _known_keys(body, {"from", "index", "columns"}, where, "explode")
    list_field = _required(body, "from", where)
    if not isinstance(list_field, str) or not re.fullmatch(r"[^.\s]+", list_field):
        raise SourceSpecError(f"{where}.from: the name of a top-level list field")
    index = body.get("index")
    if index is not None:
        if index not in contract.columns:
            raise SourceSpecError(
                f"{where}.index: {index!r} is not a column of contract {contract.name}"
            )
        if contract.columns[index] != "int":
            raise SourceSpecError(f"{where}.index: {index!r} is not an int column")
    columns = _columns(body.get("columns"), contract, f"{where}.columns", allow_sequence=False)
    if index is not None:
        columns += (ColumnSpec(name=index, type="int", explode_index=True),)
    return ExplodeSpec(field=list_field, index=index, columns=columns)


def _check_coverage(spec: SourceSpec, where: str) -> None:
    names = [c.name for c in spec.all_columns]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SourceSpecError(f"{where}: column(s) declared twice: {', '.join(dup)}")
    missing = [m for m in spec.contract.mandatory if m not in names]
    if missing:
        raise SourceSpecError(
            f"{where}: contract {spec.contract.name} needs column(s) {', '.join(missing)} "
            "(map them with from/constant/sequence)"
        )
    for col in spec.columns:
        if col.sequence is not None and (
            col.sequence not in names or spec.column(col.sequence).sequence is not None
        ):
            raise SourceSpecError(
                f"{where}.columns.{col.name}.sequence: {col.sequence!r} is not a declared column"
            )
    for col in spec.columns:
        for other in col.within:
            if other == ORDER_DAY and ORDER_DAY not in names:
                if "ordered_at" not in names:
                    raise SourceSpecError(
                        f"{where}.columns.{col.name}.within: {ORDER_DAY!r} (the day of the "
                        "order time) needs an ordered_at column"
                    )
                continue
            other_col = spec.column(other)
            if other_col is None or other_col.sequence is not None or other_col.within:
                raise SourceSpecError(
                    f"{where}.columns.{col.name}.within: {other!r} is not a declared column "
                    f"read with from or constant (and not itself made unique), nor "
                    f"{ORDER_DAY!r} (the day of the order time)"
                )
    # A field read both as a value and as an object holding mapped fields cannot be read.
    paths = [p for c in spec.columns for p in c.source] + list(spec.time_fields)
    if spec.explode is not None:
        paths.append(spec.explode.field)
        item_paths = [p for c in spec.explode.columns for p in c.source]
        _check_paths(item_paths, f"{where}.explode.columns")
    _check_paths(paths, f"{where}.columns")


def _check_paths(paths: list[str], where: str) -> None:
    for a in paths:
        for b in paths:
            if b.startswith(a + "."):
                raise SourceSpecError(
                    f"{where}: {a!r} is mapped as a value but {b!r} reads inside it"
                )


_COLUMN_KEYS = {
    "from",
    "within",
    "aliases",
    "constant",
    "sequence",
    "type",
    "timestamp_format",
    "timezone",
    "required",
    "normalise",
    "canonical",
    "pattern",
    "decimal",
    "recode",
    "symbol",
    "line_total",
    "time_from",
    "negatives",
}
NEGATIVE_FORMS = ("trailing_minus", "parentheses")
# a currency sign: no digit, sign, parenthesis or white space, at most 5 characters
_SYMBOL_RE = re.compile(r"^[^\d\s()+\-]{1,5}$")


def _columns(
    value: Any, contract: Contract, where: str, *, allow_sequence: bool
) -> tuple[ColumnSpec, ...]:
    body = _mapping(value, where, "columns")
    out = []
    for name, col in body.items():
        if name not in contract.columns:
            raise SourceSpecError(
                f"{where}.{name}: not a column of contract {contract.name}; "
                f"known: {', '.join(contract.columns)}"
            )
        out.append(_column(str(name), col, contract, f"{where}.{name}", allow_sequence))
    return tuple(out)


def _column(
    name: str, value: Any, contract: Contract, where: str, allow_sequence: bool
) -> ColumnSpec:
    body = _mapping(value, where, "a column")
    _known_keys(body, _COLUMN_KEYS, where, "column")
    ctype = _required(body, "type", where)
    if ctype not in COLUMN_TYPES:
        raise SourceSpecError(f"{where}.type: {ctype!r} is not one of {', '.join(COLUMN_TYPES)}")
    if ctype != contract.columns[name]:
        raise SourceSpecError(
            f"{where}.type: contract {contract.name} has {name} as "
            f"{contract.columns[name]}, not {ctype}"
        )
    ways = [k for k in ("from", "constant", "sequence") if k in body]
    if len(ways) != 1:
        raise SourceSpecError(f"{where}: give exactly one of from, constant, sequence")
    if "sequence" in body and not allow_sequence:
        raise SourceSpecError(f"{where}.sequence: not available for exploded item columns")
    if "aliases" in body and "from" not in body:
        raise SourceSpecError(f"{where}.aliases: only together with from")
    source: tuple[str, ...] = ()
    if "from" in body:
        source = (_path(body["from"], f"{where}.from"),) + tuple(
            _path(a, f"{where}.aliases")
            for a in _str_list(body.get("aliases", []), f"{where}.aliases")
        )
    constant = body.get("constant")
    if "constant" in body and (constant is None or isinstance(constant, dict | list)):
        raise SourceSpecError(f"{where}.constant: a scalar value")
    sequence = body.get("sequence")
    if "sequence" in body and (ctype != "int" or not isinstance(sequence, str)):
        raise SourceSpecError(f"{where}.sequence: the column to number within (int columns only)")

    within = tuple(_str_list(body.get("within", []), f"{where}.within"))
    if within and ("from" not in body or ctype != "string"):
        raise SourceSpecError(f"{where}.within: only for string columns read with from")
    if name in within:
        raise SourceSpecError(f"{where}.within: {name} cannot be within itself")

    required = body.get("required", name in contract.mandatory)
    if not isinstance(required, bool):
        raise SourceSpecError(f"{where}.required: true or false")
    if name in contract.mandatory and not required:
        raise SourceSpecError(f"{where}.required: {name} is always required by {contract.name}")

    ts_format = body.get("timestamp_format")
    if ts_format is not None:
        if ctype not in ("timestamp", "date"):
            raise SourceSpecError(f"{where}.timestamp_format: only for timestamp/date columns")
        if not isinstance(ts_format, str) or (
            ts_format not in TIMESTAMP_KEYWORDS and "%" not in ts_format
        ):
            raise SourceSpecError(
                f"{where}.timestamp_format: a strptime format (e.g. '%d/%m/%Y %H:%M:%S'), "
                f"iso8601 or epoch_s; got {ts_format!r}"
            )
        if ctype == "date" and ts_format == "epoch_s":
            raise SourceSpecError(f"{where}.timestamp_format: epoch_s is for timestamps")
    elif ctype in ("timestamp", "date") and "from" in body:
        raise SourceSpecError(f"{where}.timestamp_format: required for {ctype} columns")

    timezone = body.get("timezone")
    if timezone is not None:
        if ctype != "timestamp":
            raise SourceSpecError(f"{where}.timezone: only for timestamp columns")
        try:
            ZoneInfo(str(timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise SourceSpecError(
                f"{where}.timezone: unknown IANA time zone {timezone!r}"
            ) from None

    normalise = body.get("normalise", [])
    normalise = [normalise] if isinstance(normalise, str) else normalise
    normalise = _str_list(normalise, f"{where}.normalise")
    bad = [n for n in normalise if n not in NORMALISERS]
    if bad:
        raise SourceSpecError(
            f"{where}.normalise: unknown {', '.join(bad)}; use {', '.join(NORMALISERS)}"
        )
    if normalise and ctype != "string":
        raise SourceSpecError(f"{where}.normalise: only for string columns")

    canonical = body.get("canonical")
    if canonical is not None and (
        ctype != "string" or not (isinstance(canonical, str) and _CANONICAL_RE.match(canonical))
    ):
        raise SourceSpecError(
            f"{where}.canonical: a string column pattern with one zero-padded "
            f"number, like 'SKU-%05d'; got {canonical!r}"
        )

    pattern = body.get("pattern")
    if pattern is not None:
        if ctype != "string" or not isinstance(pattern, str) or not pattern or "'" in pattern:
            raise SourceSpecError(
                f"{where}.pattern: a regular expression for a string column (no quotes), "
                f"got {pattern!r}"
            )
        try:
            re.compile(pattern)
        except re.error as e:
            raise SourceSpecError(f"{where}.pattern: not a regular expression ({e})") from None

    decimal = body.get("decimal")
    if decimal not in (None, ".", ","):
        raise SourceSpecError(f"{where}.decimal: '.' or ','")
    if decimal is not None and ctype not in ("float", "int"):
        raise SourceSpecError(f"{where}.decimal: only for float and int columns")

    symbol = body.get("symbol")
    if symbol is not None:
        if ctype != "float":
            raise SourceSpecError(f"{where}.symbol: only for float columns (amounts)")
        if not isinstance(symbol, str) or not _SYMBOL_RE.match(symbol) or symbol in ".,":
            raise SourceSpecError(
                f"{where}.symbol: the currency sign written with the amounts, like '$' or "
                f"'€' (no digits, signs, parentheses or spaces; not the decimal mark), "
                f"got {symbol!r}"
            )
    negatives = body.get("negatives", [])
    negatives = [negatives] if isinstance(negatives, str) else negatives
    negatives = _str_list(negatives, f"{where}.negatives")
    if any(n not in NEGATIVE_FORMS for n in negatives) or len(set(negatives)) < len(negatives):
        raise SourceSpecError(
            f"{where}.negatives: each of {', '.join(NEGATIVE_FORMS)} at most once, got "
            f"{negatives}"
        )
    if negatives and ctype not in ("float", "int"):
        raise SourceSpecError(f"{where}.negatives: only for float and int columns")
    line_total = body.get("line_total", False)
    if not isinstance(line_total, bool):
        raise SourceSpecError(f"{where}.line_total: true or false")
    if line_total and (name != "unit_price" or "quantity" not in contract.columns):
        raise SourceSpecError(
            f"{where}.line_total: only for the unit_price of order lines (a field holding "
            "quantity x price)"
        )

    time_from = body.get("time_from")
    if time_from is not None:
        if ctype != "timestamp" or "from" not in body:
            raise SourceSpecError(
                f"{where}.time_from: only for timestamp columns read with from (the field "
                "holding the time of day of the date that from names)"
            )
        if not allow_sequence:
            raise SourceSpecError(f"{where}.time_from: not available for exploded item columns")
        time_from = _path(time_from, f"{where}.time_from")
        if time_from in source:
            raise SourceSpecError(f"{where}.time_from: {time_from!r} is already its from")
        if ts_format == "epoch_s":
            raise SourceSpecError(
                f"{where}.time_from: epoch_s already holds the time; give the date and time "
                "format, like '%Y-%m-%d %H:%M:%S'"
            )

    recode = (
        _recode(body["recode"], name, body, contract, normalise, pattern, f"{where}.recode")
        if "recode" in body
        else ()
    )

    return ColumnSpec(
        name=name,
        type=cast(ColumnType, ctype),
        source=source,
        constant=None if constant is None else _scalar_text(constant),
        sequence=sequence,
        within=within,
        required=required,
        timestamp_format=ts_format,
        timezone=None if timezone is None else str(timezone),
        normalise=normalise,
        canonical=canonical,
        pattern=pattern,
        decimal=decimal,
        recode=recode,
        symbol=symbol,
        line_total=line_total,
        time_from=time_from,
        negatives=tuple(negatives),
    )


# Columns a record or product is identified by, besides each contract's key: recoding
# them could make two ids one (a receipt's lines merged, two products counted as one).
_IDENTITY_COLUMNS = ("original_order_id", "sku")


def _recode(
    value: Any,
    name: str,
    body: dict[str, Any],
    contract: Contract,
    normalise: tuple[str, ...],
    pattern: str | None,
    where: str,
) -> tuple[tuple[str, str], ...]:
    """{source word: contract value}, e.g. {web: email, mail: email}: words a source
    writes for the contract's values. Refused where a map could merge identities or would
    write personal data into the sources file, and where a word or value can never apply."""
    if contract.columns[name] != "string" or "from" not in body:
        raise SourceSpecError(f"{where}: only for string columns read with from")
    if name in contract.pii:
        raise SourceSpecError(
            f"{where}: not for {name}: personal data (a map would write customers' "
            f"identifiers into the sources file); normalise reads it"
        )
    if name in contract.key or name in _IDENTITY_COLUMNS:
        raise SourceSpecError(
            f"{where}: not for {name}: it identifies a record, and a map could make two "
            f"different ones one; write one id one way with normalise, canonical or within"
        )
    words = _mapping(value, where, "recode")
    if not words:
        raise SourceSpecError(f"{where}: name at least one source word and its value")
    accepted = contract.vocabularies.get(name)
    out: list[tuple[str, str]] = []
    for word, target in words.items():
        for text, what in ((word, "source word"), (target, "value")):
            if not (isinstance(text, str) and text.strip() == text != ""):
                raise SourceSpecError(
                    f"{where}: a {what} is text without surrounding blanks, got {text!r}"
                    " (quote numbers and yes/no/on/off, which YAML reads otherwise)"
                )
        normalised = _normalised(word, normalise)
        if normalised != word:
            raise SourceSpecError(
                f"{where}.{word}: never matches: values are compared after normalise "
                f"[{', '.join(normalise)}], which makes it {normalised!r}"
            )
        if accepted is not None and target not in accepted:
            raise SourceSpecError(
                f"{where}.{word}: {target!r} is not a value contract {contract.name} accepts "
                f"for {name} ({', '.join(accepted)})"
            )
        if pattern is not None and not re.fullmatch(pattern, target):
            raise SourceSpecError(
                f"{where}.{word}: {target!r} does not match the column's pattern {pattern!r}"
            )
        out.append((word, target))
    return tuple(out)


def normalised(value: pl.Expr, steps: tuple[str, ...]) -> pl.Expr:
    """Stripped text after a column's `normalise` steps, in order: how cleaning reads a
    string value (rules._cast_string) and what `recode` words are checked against."""
    for step in steps:
        if step == "lower":
            value = value.str.to_lowercase()
        elif step == "upper":
            value = value.str.to_uppercase()
        elif step == "digits":
            digits = value.str.replace_all(r"\D", "")
            value = pl.when(digits != "").then(digits)
        elif step == "integer":
            # exports through a float column write ids as 17850.0: the same id as 17850
            value = value.str.replace(r"^([+-]?\d+)\.0*$", "${1}")
        # "strip" is implicit: every value is stripped before casting
    return value


def _normalised(text: str, normalise: tuple[str, ...]) -> str:
    """`text` as cleaning normalises a value ('' where nothing is left)."""
    return pl.select(normalised(pl.lit(text.strip()), normalise)).item() or ""


def canonical_parts(pattern: str) -> tuple[str, int, str]:
    """('SKU-', 5, '') for 'SKU-%05d'."""
    m = _CANONICAL_RE.match(pattern)
    if m is None:  # validated at load time; reaching this is a bug
        raise ValueError(f"not a canonical pattern: {pattern!r}")
    return m["prefix"], int(m["width"]), m["suffix"]


# --------------------------------------------------------------------------- helpers


def _scalar_text(value: Any) -> str:
    # YAML `true` must land as the same text a JSON export would give
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _mapping(value: Any, where: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SourceSpecError(f"{where}: {what} must be a mapping, got {type(value).__name__}")
    return value


def _required(body: dict[str, Any], key: str, where: str) -> Any:
    if key not in body or body[key] is None:
        raise SourceSpecError(f"{where}: missing required key '{key}'")
    return body[key]


def _known_keys(body: dict[str, Any], allowed: set[str], where: str, what: str) -> None:
    unknown = sorted(set(map(str, body)) - allowed)
    if unknown:
        raise SourceSpecError(
            f"{where}: unknown {what} key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if not (isinstance(value, list) and all(isinstance(v, str) and v for v in value)):
        raise SourceSpecError(f"{where}: a list of names, got {value!r}")
    return tuple(value)


def _path(value: Any, where: str) -> str:
    if not (isinstance(value, str) and value and all(p for p in value.split("."))):
        raise SourceSpecError(f"{where}: a field name (dotted for nested), got {value!r}")
    return value
