"""Raw text -> typed values, and a readable reason for every value that fails.

Every reason reads `column: problem (value)`, e.g. `quantity: not an integer
('two')`. Values of PII columns are never quoted, and quoted values pass
through `redact_text`, so reasons are safe to store and show.

Failures are found with cheap boolean expressions over all rows; reason text
is only built for the rows that fail.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import polars as pl
import polars.selectors as cs

from aiwf_assets.cleaning.pii import redact_text
from aiwf_assets.ingest.numbers import (
    Reading,
    as_read,
    failed_as,
    per_unit,
    read_float,
    read_int,
    shortened,
)
from aiwf_assets.ingest.parse import holds_nothing
from aiwf_assets.ingest.spec import ColumnSpec, SourceSpec, canonical_parts, normalised
from aiwf_assets.ingest.timestamps import read_timestamp

REASONS = "_reasons"
_TEXT = "__text_"  # prefix of the stripped source text kept beside each typed value
_FAILED = "__failed"
_TRUE = ("true", "1", "yes", "y", "t")
_FALSE = ("false", "0", "no", "n", "f")

# Event times before this are clock or export faults (epoch 0, default dates), not history.
EARLIEST_EVENT = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def shown(text: pl.Expr, *, quote: bool) -> pl.Expr:
    """`('two')` for source text, `(-3)` for a typed value; shortened, identifiers masked."""
    mark = "'" if quote else ""
    return pl.lit(f"({mark}") + redact_text(shortened(text)) + pl.lit(f"{mark})")


def _blank_to_null(expr: pl.Expr) -> pl.Expr:
    return pl.when(holds_nothing(expr)).then(None).otherwise(expr)


# --------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Check:
    """Rows where `failed` is true get `message` (evaluated on failing rows only)."""

    failed: pl.Expr
    message: pl.Expr


def find_failures(typed: pl.DataFrame, checks: list[Check]) -> tuple[pl.Series, pl.Series]:
    """(mask of failing rows, their `;`-joined reasons in row order)."""
    if not checks:
        return pl.Series(_FAILED, [False] * typed.height), pl.Series(REASONS, [], pl.String)
    failed = [c.failed.fill_null(False) for c in checks]
    mask = typed.select(pl.any_horizontal(failed).alias(_FAILED)).to_series()
    reasons = (
        typed.filter(mask)
        .select(
            pl.concat_str(
                [pl.when(f).then(c.message) for f, c in zip(failed, checks, strict=True)],
                separator="; ",
                ignore_nulls=True,
            ).alias(REASONS)
        )
        .to_series()
    )
    return mask, reasons


def drop_helpers(typed: pl.DataFrame) -> pl.DataFrame:
    return typed.drop(cs.starts_with(_TEXT))


# --------------------------------------------------------------------------- casting


def cast_columns(raw: pl.DataFrame, spec: SourceSpec) -> tuple[pl.DataFrame, list[Check]]:
    """Typed value for every raw column of `spec`, and the checks that go with them.

    The frame keeps lineage and a stripped text copy per column (drop it with
    `drop_helpers`); PII columns come out stripped but not yet normalised or hashed.
    """
    columns = spec.all_columns
    stripped = raw.with_columns(
        _blank_to_null(_empty_nested_to_blank(spec, pl.col(c.name).str.strip_chars())).alias(
            _TEXT + c.name
        )
        for c in columns
    )
    non_product = tuple(spec.non_merchandise)
    casts = {
        c.name: _cast(
            as_read(spec, c), pl.col(_TEXT + c.name), non_product if c.name == "sku" else ()
        )
        for c in columns
    }
    # lazily, so an expression shared by several casts (a timestamp's first reading, which
    # decides whether the other ISO forms are tried) is computed once
    typed = (
        stripped.lazy()
        .with_columns(cast.value.alias(name) for name, cast in casts.items())
        .with_columns(unit_prices(spec))
        .collect()
    )
    checks: list[Check] = []
    for col in columns:
        text = pl.col(_TEXT + col.name)
        # the value after a reason, `('two')`; a PII column's is never shown
        value = pl.lit("") if col.name in spec.contract.pii else " " + shown(text, quote=True)
        # a sequence number is missing exactly when the value it numbers is: said once there
        if col.required and col.sequence is None:
            checks.append(Check(text.is_null(), pl.lit(_missing(col.name, stripped))))
        problem = casts[col.name].problem
        if problem is not None:
            checks.append(
                Check(
                    text.is_not_null() & pl.col(col.name).is_null(),
                    f"{col.name}: " + problem(text) + value,
                )
            )
        if col.name in IDENTIFIERS:
            checks.append(_rewritten_as_number(col.name, text, value))
        if spec.format != "csv" and col.type == "string" and col.source:
            # a JSON/Parquet list or object where one value belongs (`"sku": ["A", "B"]`,
            # `"promo": {"code": "SPRING"}`) reaches raw as its JSON text: not a value
            checks.append(
                Check(
                    text.str.contains(_NESTED_RE),
                    pl.lit(f"{col.name}: a list or object where one value is expected") + value,
                )
            )
    return typed, checks


def unit_prices(spec: SourceSpec) -> list[pl.Expr]:
    """The unit price of a source whose `unit_price` field is the line's total (`line_total`,
    `per_unit`); nothing for the others."""
    price, quantity = spec.column("unit_price"), spec.column("quantity")
    if price is None or quantity is None or not price.line_total:
        return []
    return [per_unit(pl.col("unit_price"), pl.col("quantity")).alias("unit_price")]


_NESTED_RE = r"(?s)^(\[.*\]|\{.*\})$"


def _empty_nested_to_blank(spec: SourceSpec, text: pl.Expr) -> pl.Expr:
    """An empty JSON list or object (`"promo_code": []`, as some shops write "none") is no
    value, in JSON Lines and Parquet sources."""
    if spec.format == "csv":
        return text
    return pl.when(text.str.contains(r"^(\[\s*\]|\{\s*\})$")).then(pl.lit("")).otherwise(text)


# Identifier columns: two ids that a spreadsheet wrote as one `1.23457E+11` would be read as
# one order (or one customer), and a line of the other removed as its duplicate.
IDENTIFIERS = (
    "order_id", "original_order_id", "ticket_id", "session_id", "crm_id", "loyalty_id",
)  # fmt: skip
# Scientific notation as spreadsheets write it (1.23457E+11, 1E+12; pandas 1.23457e+11),
# also as the last part of an id composed `within` other columns (s01/1.23457E+11). The
# exponent's sign is required: hexadecimal ids (session tokens, 12e45) are not numbers.
_SCIENTIFIC_RE = r"(?:^|/)[+-]?\d+(?:[.,]\d+)?[eE][+-]\d+$"  # 1,23457E+11: European Excel


def _rewritten_as_number(column: str, text: pl.Expr, value: pl.Expr) -> Check:
    message = pl.lit(
        f"{column}: looks like a number a spreadsheet rewrote in scientific notation (digits "
        "lost); export the column as text"
    )
    return Check(text.str.contains(_SCIENTIFIC_RE), message + value)


def _missing(column: str, stripped: pl.DataFrame) -> str:
    text = stripped.get_column(_TEXT + column)
    if stripped.height > 1 and text.null_count() == stripped.height:
        # empty in every row of a file: the column is usually absent or renamed (drift)
        return f"{column}: missing in every row of the file (column absent or renamed?)"
    return f"{column}: missing"


def _cast(col: ColumnSpec, text: pl.Expr, exempt: Iterable[str] = ()) -> Reading:
    if col.type == "string":
        return _cast_string(col, text, exempt)
    if col.type == "int":
        return read_int(col, text)
    if col.type == "float":
        return read_float(col, text)
    if col.type == "bool":
        lower = text.str.to_lowercase()
        value = pl.when(lower.is_in(_TRUE)).then(True).when(lower.is_in(_FALSE)).then(False)
        return Reading(value, failed_as("not a boolean"))
    if col.type == "date":
        fmt = "%Y-%m-%d" if col.timestamp_format in (None, "iso8601") else col.timestamp_format
        return Reading(
            text.str.to_date(fmt, strict=False), failed_as(f"not a date in format '{fmt}'")
        )
    return _cast_timestamp(col, text)


def _cast_string(col: ColumnSpec, text: pl.Expr, exempt: Iterable[str] = ()) -> Reading:
    value = normalised(text, col.normalise)
    if col.recode:
        # the source's words for the contract's values, compared after normalisation; a
        # word not listed stays as it is (a contract value passes, anything else fails
        # the contract's rule), so nothing is defaulted
        value = value.replace(dict(col.recode))
    if col.canonical is None:
        return Reading(value, None)
    prefix, width, suffix = canonical_parts(col.canonical)
    # The code's one number, after any prefix (`SKU-`, `sku-`, `Art. `) and before nothing
    # but the pattern's own suffix: `SKU2-00012`, `12-B` or `1.2E1` name another product
    # (or none) than the first run of their digits, so they are rejected, not rebuilt.
    tail = f"(?i:{re.escape(suffix)})?" if suffix else ""
    number = value.str.extract(rf"^\D*(\d+){tail}$", 1).cast(pl.Int64, strict=False)
    canonical = pl.lit(prefix) + number.cast(pl.String).str.zfill(width) + pl.lit(suffix)
    if exempt:  # declared codes that are not products (POST, BANK CHARGES) stay as written
        canonical = pl.when(value.is_in(list(exempt))).then(value).otherwise(canonical)
    return Reading(canonical, failed_as(f"not one number to build '{col.canonical}'"))


def _cast_timestamp(col: ColumnSpec, text: pl.Expr) -> Reading:
    reading = read_timestamp(col, text)
    zone = col.timezone or "UTC"
    if zone == "UTC":
        return Reading(reading.value, failed_as(reading.unreadable))

    def problem(text: pl.Expr) -> pl.Expr:
        # a wall-clock time that reads but falls in the hour a clock change skips
        return (
            pl.when(reading.naive.is_not_null())
            .then(pl.lit(f"does not exist in {zone}, skipped by the clock change"))
            .otherwise(pl.lit(reading.unreadable))
        )

    return Reading(reading.value, problem)


# --------------------------------------------------------------------------- rules


# A planned campaign longer than this is a typo (a year too far), not a plan.
MAX_CAMPAIGN_DAYS = 62


@dataclass(frozen=True)
class Rule:
    """A check on a typed column: rows where `ok` is false get `column: problem (value)`."""

    column: str
    ok: pl.Expr  # null counts as ok: missing values are the `required` rule's business
    problem: str


def greater_than(column: str, bound: float) -> Rule:
    return Rule(column, pl.col(column) > bound, f"must be > {bound:g}")


def at_least(column: str, bound: float) -> Rule:
    return Rule(column, pl.col(column) >= bound, f"must be >= {bound:g}")


def between(column: str, low: float, high: float) -> Rule:
    return Rule(column, pl.col(column).is_between(low, high), f"must be {low:g}..{high:g}")


def one_of(column: str, values: Iterable[str]) -> Rule:
    allowed = sorted(values)
    return Rule(column, pl.col(column).is_in(allowed), f"not one of {', '.join(allowed)}")


def event_time(
    column: str, partition_date: dt.date, zone: str | None = None,
    business_day_end: dt.time | None = None,
) -> list[Rule]:
    """An event cannot be later than the end of the day its file was delivered: midnight
    UTC, or where the column's times are written (`zone`) if that is later: a Los Angeles
    file of 1 March ends at 08:00 UTC on 2 March. A source whose business day runs past
    midnight (`business_day_end`, local) delivers until then: a Berlin bar's file of
    5 January until 04:00 on the 6th."""
    end = day_end(partition_date, zone, business_day_end)
    future = f"in the future for a {partition_date} delivery"
    if end > day_end(partition_date, zone):
        local = end.astimezone(ZoneInfo(zone or "UTC"))
        future += f" (its business day ends {local:%Y-%m-%d %H:%M} {zone or 'UTC'})"
    return [
        Rule(column, pl.col(column) < end, future),
        # `05/01/26` read by a `%Y` format is the year 26: say so rather than "before 2000"
        Rule(column, pl.col(column).dt.year() >= 100, _TWO_DIGIT_YEAR),
        Rule(
            column,
            (pl.col(column) >= EARLIEST_EVENT) | (pl.col(column).dt.year() < 100),
            "before 2000-01-01",
        ),
    ]


_TWO_DIGIT_YEAR = "a year below 100: a two-digit year read by %Y? (the format needs %y)"


def day_end(
    day: dt.date, zone: str | None = None, business_day_end: dt.time | None = None
) -> dt.datetime:
    """The latest of the day's end in UTC, in `zone`, and (for a business day that runs past
    midnight) `business_day_end` on the next day in `zone` (UTC without one), in UTC."""
    after = day + dt.timedelta(days=1)
    utc = dt.datetime.combine(after, dt.time(), dt.UTC)
    ends = [utc]
    if zone is not None:
        ends.append(dt.datetime.combine(after, dt.time(), ZoneInfo(zone)).astimezone(dt.UTC))
    if business_day_end is not None:
        local = ZoneInfo(zone or "UTC")
        ends.append(dt.datetime.combine(after, business_day_end, local).astimezone(dt.UTC))
    return max(ends)


# why a line at 0 is refused where the source does not declare that lines may be free
NOT_FREE = "must be > 0, or declare free_lines: true for lines given away"


def unit_price_rules(spec: SourceSpec) -> list[Rule]:
    """A price is > 0 (>= 0 where the source declares `free_lines`: a line given away),
    but on the lines of an order amount read with `negate` (an order-level discount written
    as a positive amount), where it is < 0: one written negative already would add to the
    order's money (then drop `negate`). A line at 0 the source does not declare free is
    refused saying what to declare."""
    price = pl.col("unit_price")
    taken_off = [a.code for a in spec.order_amounts if a.negate]
    discount = pl.col("sku").is_in(taken_off) if taken_off else pl.lit(False)
    rules = [Rule("unit_price", discount | (price >= 0), "must be > 0")]
    if not spec.free_lines:
        rules.append(Rule("unit_price", discount | (price != 0), NOT_FREE))
    if not taken_off:
        return rules
    return [
        *rules,
        Rule(
            "unit_price",
            ~discount | (price < 0),
            "must be < 0 once negated (an order amount taken off the order, written below 0: "
            "drop its negate?)",
        ),
    ]


def return_mark(spec: SourceSpec) -> pl.Expr:
    """True for the typed rows `spec` declares as returns or cancellations, and for the lines
    of its order amounts that are refunds (`refund: true`)."""
    marks: list[pl.Expr] = []
    if spec.refund_codes:
        marks.append(pl.col("sku").is_in(list(spec.refund_codes)))
    returns = spec.returns
    if returns is not None:
        if returns.order_prefix is not None:
            marks.append(pl.col("order_id").str.starts_with(returns.order_prefix))
        if returns.negative_quantity:
            marks.append(pl.col("quantity") < 0)
        if returns.status_values:
            # `Returned`, ` RETURNED` and `returned` are one mark
            marks.append(
                pl.col("line_status")
                .str.strip_chars()
                .str.to_lowercase()
                .is_in([v.strip().lower() for v in returns.status_values])
            )
    return pl.any_horizontal(marks).fill_null(False) if marks else pl.lit(False)


def matches(column: str, pattern: str, exempt: Iterable[str] = ()) -> Rule:
    """The whole value matches `pattern` (values in `exempt` pass as they are)."""
    ok = pl.col(column).str.contains(f"^(?:{pattern})$")
    exempt = list(exempt)
    if exempt:
        ok = ok | pl.col(column).is_in(exempt)
    return Rule(column, ok, f"does not match the declared pattern '{pattern}'")


def contract_rules(
    spec: SourceSpec,
    *,
    partition_date: dt.date | None = None,
    currency_rates: Mapping[str, float] | None = None,
) -> list[Rule]:
    """The contract's value rules, for the columns this source declares."""
    contract = spec.contract.name
    # columns with a fixed vocabulary (ticket category, contact channel, session device)
    rules: list[Rule] = [one_of(c, v) for c, v in spec.contract.vocabularies.items()]
    if contract == "order_lines":
        # a quantity below zero is a return only where the source declares how it marks them
        is_return = return_mark(spec)
        rules += [
            Rule("quantity", (pl.col("quantity") > 0) | is_return, "must be > 0"),
            *unit_price_rules(spec),
        ]
        if "quantity" in {c.name for c in spec.all_columns}:
            # 1e308 is a float, but not once multiplied: an infinite line amount would fail
            # the day's contract audit and hold every source of the day back for one row
            top_rate = max([1.0, *(currency_rates or {}).values()])
            amount = pl.col("quantity").cast(pl.Float64) * pl.col("unit_price") * top_rate
            rules.append(
                Rule("unit_price", amount.is_finite(), "times the quantity is not a finite amount")
            )
        if spec.returns is not None:
            # a return of 0 units; a sale of 0 is already `must be > 0` (said once)
            rules.append(Rule("quantity", ~is_return | (pl.col("quantity") != 0), "must not be 0"))
        if currency_rates is not None:
            rules.append(one_of("currency", currency_rates))  # codes with a declared rate
    elif contract == "tickets":
        rules.append(between("satisfaction", 1, 5))
    elif contract == "sessions":
        rules += [
            at_least(c, 0) for c in ("pages_viewed", "product_views", "added_to_cart", "duration_s")
        ]
    elif contract == "customers":
        born_ok = (pl.col("birth_year") >= 1900) & (
            pl.col("signup_date").is_null()
            | (pl.col("birth_year") <= pl.col("signup_date").dt.year())
        )
        rules.append(Rule("birth_year", born_ok, "must be 1900..signup year"))
    elif contract == "products":
        rules.append(greater_than("list_price", 0))
    elif contract == "promotion_plan":
        start = pl.col("start_date")
        rules += [
            Rule("discount_pct", pl.col("discount_pct").is_between(0, 100, "none"),
                 "must be > 0 and < 100"),
            Rule("end_date", pl.col("end_date") >= start, "must not be before start_date"),
            Rule("end_date", pl.col("end_date") <= start + dt.timedelta(days=MAX_CAMPAIGN_DAYS - 1),
                 f"must be at most {MAX_CAMPAIGN_DAYS} days after start_date"),
            Rule("published_on", pl.col("published_on") <= start,
                 "must not be after start_date"),
            Rule("categories", pl.col("categories").str.replace_all(r"[;\s]", "") != "",
                 "must name at least one category"),
        ]  # fmt: skip
    elif contract == "exchange_rates":
        rules += [
            Rule(
                "currency", pl.col("currency").str.contains(r"^[A-Z]{3}$"),
                "not a three-letter ISO 4217 code",
            ),
            greater_than("rate_to_eur", 0),
            Rule(
                "rate_to_eur", (pl.col("currency") != "EUR") | (pl.col("rate_to_eur") == 1),
                "must be 1 for EUR",
            ),
        ]
    timed = spec.contract.event_time  # a daily contract's record time: not in the future
    if timed is not None and partition_date is not None:
        rules += event_time(timed, partition_date, _zone(spec, timed), spec.business_day_end)
    rules += [
        matches(c.name, c.pattern, spec.non_merchandise if c.name == "sku" else ())
        for c in spec.all_columns
        if c.pattern is not None
    ]
    declared = {c.name for c in spec.all_columns}
    return [r for r in rules if r.column in declared]


def _zone(spec: SourceSpec, column: str) -> str | None:
    col = spec.column(column)
    return col.timezone if col is not None else None


def rule_checks(typed: pl.DataFrame, rules: list[Rule]) -> list[Check]:
    """Checks for `rules`, showing the typed value, e.g. `quantity: must be > 0 (-3)`."""
    return [
        Check(
            r.ok.not_(),
            pl.lit(f"{r.column}: {r.problem} ")
            + shown(_as_text(typed.schema[r.column], r.column), quote=False),
        )
        for r in rules
    ]


def _as_text(dtype: pl.DataType, column: str) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        return pl.col(column).dt.to_string("%Y-%m-%dT%H:%M:%SZ")
    return pl.col(column).cast(pl.String)
