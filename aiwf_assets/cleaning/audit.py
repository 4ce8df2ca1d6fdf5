"""The audit of write-audit-publish: blocking checks on staged rows, as readable findings.

Pure: frames and numbers in, findings out. The cleaning assets stage a day's tables,
read them back, run these, and publish only when no blocking finding is left.

Guards (thresholds in `GuardThresholds`, documented in DATA_CONTRACTS.md):
- volume: a daily source whose records fall below `min_volume_ratio` of its trailing
  median (its published days in the last `window_days`) where Poisson noise around that
  median explains it with a chance under `max_chance` (so an empty file is held back
  unless the channel is so small that empty days happen); with no published history
  yet, a sales source needs at least one record (an empty, header-only or missing
  file is held back);
- shape: a daily file that ends mid-record (cut off inside its last line);
- early end: a sales file whose last order is more than `early_end_hours` earlier than on
  any of the same weekday's published days in the window (at least 3), when those days
  had so many orders after that time that none by chance has a chance under `max_chance`
  (an export run before the day ended: complete records, just too few);
- reference shrink: a reference table that would lose more than `max_reference_shrink`
  of its published rows, or become empty;
- quarantine share: a daily source whose day quarantines more than `max_quarantine_share`
  of its rows for one kind of reason, where the source's usual share (its published days
  in the window, at least `USUAL_QUARANTINE_FLOOR`) explains that many with a chance under
  `max_chance` (a changed export: a trailing delimiter, another encoding, a renamed
  column, a title line);
- re-delivery shrink: a daily file delivered again for a day already published that reads
  more than `max_reference_shrink` fewer records than the published delivery (rows would
  vanish from a day nobody looks at again);
- cross-day: a daily source whose day consists mostly (more than `max_cross_day_share`, and
  at least `MIN_CROSS_DAY_KEYS`) of business keys (order ids, ticket or session ids)
  already delivered on earlier days (another day's file delivered under this day's name:
  the marts keep the first delivery of a key, so the day would publish nothing new).
A deliberate override for a real drop is the run tag `OVERRIDE_TAG` naming the sources
(`web_orders,customers`) or `*`.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl
from scipy.stats import binom, poisson

from aiwf_assets.cleaning.contracts import CheckFailure

OVERRIDE_TAG = "aiwf/accept_drop"
_SHOWN = 3  # failing rows named per finding; the rest are counted


@dataclass(frozen=True)
class GuardThresholds:
    min_volume_ratio: float = 0.2
    max_chance: float = 0.001
    window_days: int = 28
    max_reference_shrink: float = 0.2
    # a sales file whose last record is this much earlier than the same weekday's usually
    # are (and whose volume is not explained by noise) reads as an export run too early;
    # above the hour a daylight-saving change moves every UTC time
    early_end_hours: float = 2.0
    # a day whose file quarantines more than this share of its rows (beyond chance) reads
    # as an export whose format changed; the generator's days with faults stay far below
    max_quarantine_share: float = 0.5
    # a day whose records were mostly delivered on earlier days already reads as another
    # day's file under this day's name; the generator's re-sent orders stay far below
    max_cross_day_share: float = 0.5


def overridden_sources(tags: Mapping[str, str]) -> frozenset[str]:
    """Sources whose guards a run deliberately overrides (`*` for all)."""
    value = tags.get(OVERRIDE_TAG, "")
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def is_overridden(source: str, overrides: frozenset[str]) -> bool:
    return "*" in overrides or source in overrides


# --------------------------------------------------------------------------- contract


def where(frame: pl.DataFrame, row: int) -> str:
    """Where a row of a cleaned table came from: source file, row and channel."""
    values = frame.row(row, named=True)
    parts = []
    if values.get("source_file") is not None:
        parts.append(f"file {values['source_file']}")
    if values.get("source_row") is not None:
        parts.append(f"row {values['source_row']}")
    elif values.get("order_id") is not None:
        parts.append(f"order {values['order_id']}")
    if values.get("channel") is not None:
        parts.append(f"channel {values['channel']}")
    return ", ".join(parts) or f"position {row}"


def contract_finding(table: str, frame: pl.DataFrame, failure: CheckFailure) -> str:
    """One contract failure with the file, row and column of its first failing rows."""
    column = f"column {failure.column}" if failure.column else "a check across columns"
    rows = [r for r in failure.rows if 0 <= r < frame.height][:_SHOWN]
    # examples of column checks are the failing values, in the order of `rows`
    values = failure.examples if failure.column and len(failure.examples) >= len(rows) else ()
    located = [
        where(frame, r) + (f" (value {values[i]!r})" if values else "")
        for i, r in enumerate(rows)
    ]
    if not located:  # a column-wide failure (e.g. its type): no row to name
        return f"{table}: {failure.check} failed on {column}: {', '.join(failure.examples)}"
    more = failure.count - len(located)
    tail = f"; and {more} more" if more > 0 else ""
    first = "; ".join(located)
    return f"{table}: {failure.check} failed on {column} in {failure.count} row(s): {first}{tail}"


# --------------------------------------------------------------------------- guards


def volume_finding(
    source: str, records: int, history: Sequence[int], thresholds: GuardThresholds,
    floor: int = 1, file: str | None = None,
) -> str | None:
    """Why a daily source's volume holds the day back, or None when it may be published.

    `records`: records read from the day's file; `history`: the same on the source's
    published days in the window. A day is held back when it is below `min_volume_ratio`
    x the trailing median *and* so low that a Poisson count with that median would fall
    there with a chance under `max_chance` (small channels see empty days by chance; big
    ones see weekly swings far larger than Poisson noise, which the ratio allows for).
    Without history the `floor` holds: one record for a sales channel (a day without a
    single sale is a broken delivery), none for a service desk or web sessions (a small
    shop has quiet days; their guard starts with the history). `file`: where the day's file
    was looked for (landing path), named when it had no record.
    """
    where = f" at landing/{file}" if file else ""
    if not history:
        if records < floor:
            return (
                f"{source}: no record for the day (an empty, header-only or missing file)"
                f"{where} and no published history to compare with"
            )
        return None
    median = statistics.median(history)
    if records >= thresholds.min_volume_ratio * median:
        return None
    chance = float(poisson.cdf(records, median))
    if chance >= thresholds.max_chance:
        return None
    what = f"no record (an empty, header-only or missing file){where}" if records == 0 else (
        f"{records} record(s)"
    )
    return (
        f"{source}: {what}, below {thresholds.min_volume_ratio:g} x the trailing median of"
        f" {median:g} over {len(history)} published day(s) (chance {chance:.1g} by noise);"
        " a truncated or partial delivery?"
    )


def early_end_finding(
    source: str,
    last_hours: float | None,
    same_weekday: Sequence[tuple[float, int]],
    thresholds: GuardThresholds,
) -> str | None:
    """Why a sales file reads as cut short in time, or None.

    `last_hours`: the day's latest order time, in hours from the delivery day's midnight
    (UTC; over 24 for orders after midnight), None without orders (the volume guard's
    case). `same_weekday`: for each published day of the same weekday in the window, its
    latest order in the same hours and how many orders it had after `last_hours`.
    """
    if last_hours is None or len(same_weekday) < 3:
        return None
    earliest = min(last for last, _ in same_weekday)
    if last_hours >= earliest - thresholds.early_end_hours:
        return None
    later = statistics.median(after for _, after in same_weekday)
    chance = float(poisson.pmf(0, later))
    if chance >= thresholds.max_chance:
        return None
    return (
        f"{source}: the file's last order is at {_clock(last_hours)} UTC, "
        f"{earliest - last_hours:.1f} h before the earliest last order of the same weekday "
        f"over {len(same_weekday)} published week(s) ({_clock(earliest)}), when a median "
        f"of {later:g} order(s) came later (chance {chance:.1g} that none would); an export "
        "run before the day ended?"
    )


# A source's usual quarantine share is taken as at least this: a history without a single
# bad row must not make two bad rows of a three-row day a broken file.
USUAL_QUARANTINE_FLOOR = 0.05


def quarantine_finding(
    source: str,
    rows_in: int,
    quarantined: int,
    reasons: Sequence[tuple[str, int]],
    history: tuple[int, int, int],
    thresholds: GuardThresholds,
) -> str | None:
    """Why a daily source's day quarantines too many of its rows to be published, or None.

    `reasons`: (kind of reason, rows) of the day's quarantined rows, most frequent first
    (`quarantine.by_reason`); `history`: (published days, rows in, rows quarantined) of the
    source in the window. The share that counts is of the rows quarantined for the most
    frequent kind of reason: a changed export (a trailing delimiter, another encoding, a
    renamed column, a title line, decimal commas) gives every row the same reason, while
    a few broken records of a tiny day each have their own (the generator's fault days
    quarantine every row of a four-ticket day, for four reasons). Held back when that
    share is above `max_quarantine_share` *and* a binomial count at the source's usual
    share (its history's, at least USUAL_QUARANTINE_FLOOR) reaches it with a chance under
    `max_chance`: a tiny day with a bad row or two passes, and so does a source that
    always quarantines this much.
    """
    if rows_in == 0 or not reasons:
        return None
    reason, alike = reasons[0]
    share = alike / rows_in
    if share <= thresholds.max_quarantine_share:
        return None
    days, past_in, past_quarantined = history
    usual = max(past_quarantined / past_in if past_in else 0.0, USUAL_QUARANTINE_FLOOR)
    chance = float(binom.sf(alike - 1, rows_in, usual))
    if chance >= thresholds.max_chance:
        return None
    others = "; ".join(f"{r!r} x {n}" for r, n in reasons[1:_SHOWN])
    more = f"; and {len(reasons) - _SHOWN} more kind(s)" if len(reasons) > _SHOWN else ""
    other_reasons = f"; other reasons: {others}{more}" if others else ""
    return (
        f"{source}: {quarantined} of {rows_in} row(s) quarantined, {alike} ({share:.0%}) for"
        f" {reason!r} (more than {thresholds.max_quarantine_share:.0%} of the rows for one"
        f" reason; usually {usual:.1%} quarantined over {days} published day(s), chance"
        f" {chance:.1g}){other_reasons}; a changed export format (delimiter, encoding,"
        f" columns)? To publish the day with these rows in quarantine: run tag"
        f" {OVERRIDE_TAG}={source}"
    )


def order_hours(lines: pl.DataFrame) -> pl.DataFrame:
    """channel, partition_date, order_id and each line's order time in hours from its
    delivery day's midnight (UTC): the early-end guard's unit."""
    midnight = pl.col("partition_date").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return lines.select(
        "channel",
        "partition_date",
        "order_id",
        hours=(pl.col("ordered_at").dt.convert_time_zone("UTC") - midnight).dt.total_seconds()
        / 3600.0,
    )


def early_end_inputs(
    today: pl.DataFrame, same_weekday: pl.DataFrame, channel: str
) -> tuple[float | None, list[tuple[float, int]]]:
    """`early_end_finding`'s inputs for one sales channel from `order_hours` frames: the
    day's latest order, and per published day of the same weekday its latest order and
    how many orders (not lines: a basket's lines come together) came after the day's latest."""
    mine = today.filter(pl.col("channel") == channel)["hours"]
    if mine.is_empty():
        return None, []
    last = float(mine.max())  # type: ignore[arg-type]
    history = (
        same_weekday.filter(pl.col("channel") == channel)
        .group_by("partition_date")
        .agg(
            last=pl.col("hours").max(),
            after=pl.col("order_id").filter(pl.col("hours") > last).n_unique(),
        )
        .sort("partition_date")
    )
    return last, [(float(r), int(a)) for r, a in history.select("last", "after").iter_rows()]


def _clock(hours: float) -> str:
    minutes = round(hours * 60)
    day, minute = divmod(minutes, 24 * 60)
    clock = f"{minute // 60:02d}:{minute % 60:02d}"
    if day == 0:
        return clock
    return f"{clock} (the day before)" if day < 0 else f"{clock} (+{day} day)"


def ends_mid_record(raw: pl.DataFrame) -> bool:
    """Whether a raw partition's landing file was cut off inside its last record (counted
    at ingestion from the bytes: the last line unreadable and without a line break)."""
    return "_file_ends_mid_record" in raw.columns and bool(
        raw.get_column("_file_ends_mid_record").any()
    )


def relinked_finding(days: Sequence[tuple[str, int]]) -> str | None:
    """Why published history is split between two keys of one customer, or None.

    `days`: (delivery day, records) of published orders and interactions whose customer key
    is an identifier's own (a guest's e-mail, an unknown loyalty card) that the CRM now
    links to a customer: a guest who signed up, a card registered later. Cleaning keyed
    them when they were published; the customer's later records get the CRM key, so her
    history, RFM and scores stay split until those days are cleaned again."""
    if not days:
        return None
    records = sum(n for _, n in days)
    first, last = days[0][0], days[-1][0]
    span = first if first == last else f"{first} .. {last}"
    return (
        f"{records} published order(s)/interaction(s) on {len(days)} day(s) ({span}) carry the"
        " key of an identifier the CRM now links to a customer (a guest who signed up, a card"
        " registered later): her history, RFM and scores stay split between two keys until"
        " those days are cleaned again: dagster job backfill -w workspace.yaml -j"
        f" daily_ingest_job --from {first} --to {last} --noprompt (README, Backfills from the CLI)"
    )


def reference_finding(
    table: str, staged_rows: int, published_rows: int | None, thresholds: GuardThresholds
) -> str | None:
    """Why a reference snapshot may not replace the published table, or None."""
    if staged_rows == 0:
        was = f"the published {published_rows} row(s)" if published_rows else "nothing"
        return f"{table}: the new snapshot has no usable row; it would replace {was}"
    if not published_rows:
        return None
    shrink = 1 - staged_rows / published_rows
    if shrink > thresholds.max_reference_shrink:
        return (
            f"{table}: the new snapshot has {staged_rows} row(s), {shrink:.0%} fewer than the"
            f" published {published_rows} (more than {thresholds.max_reference_shrink:.0%})"
        )
    return None


def redelivery_finding(
    source: str, records: int, published: int | None, thresholds: GuardThresholds
) -> str | None:
    """Why a day's file, delivered again, may not replace the published day, or None.

    `records`: records read from the new file; `published`: those of the delivery the day
    was published from (None: the day was never published). An empty file is the volume
    guard's business; this catches a partial re-delivery that would drop published rows."""
    if not published or records == 0:
        return None
    shrink = 1 - records / published
    if shrink > thresholds.max_reference_shrink:
        return (
            f"{source}: delivered again with {records} record(s), {shrink:.0%} fewer than the"
            f" {published} the day was published with (more than"
            f" {thresholds.max_reference_shrink:.0%}); a partial re-delivery?"
        )
    return None


# A day with fewer keys already delivered elsewhere is not held whatever its share: a quiet
# service desk's day of two tickets, one of them re-sent, is not another day's file.
MIN_CROSS_DAY_KEYS = 5


def cross_day_finding(
    source: str,
    noun: str,
    keys: int,
    first_delivered: Sequence[tuple[str, int]],
    thresholds: GuardThresholds,
) -> str | None:
    """Why a daily source's day reads as another day's file delivered under its name, or None.

    `keys`: distinct business keys (order, ticket or session ids) of the day's file; `noun`:
    what one is (`order`); `first_delivered`: (day, keys) for the day's keys already
    delivered on earlier days (published, or delivered on an earlier day of the same run),
    each key counted on the first of those days. Held back when more than `max_cross_day_share`
    of the keys, and at least MIN_CROSS_DAY_KEYS, were delivered before: the marts keep the
    first delivery of a key, so such a day publishes copies in place of its own records. A
    few re-sent orders and a file covering several days delivered once stay below; a day
    delivered again under its own name is not another day.
    """
    repeated = sum(n for _, n in first_delivered)
    if keys == 0 or repeated < MIN_CROSS_DAY_KEYS:
        return None
    share = repeated / keys
    if share <= thresholds.max_cross_day_share:
        return None
    ranked = sorted(first_delivered, key=lambda d: (-d[1], d[0]))
    if len(ranked) == 1:
        days = ranked[0][0]
    else:
        shown = ", ".join(f"{day} ({n})" for day, n in ranked[:_SHOWN])
        more = f" and {len(ranked) - _SHOWN} more day(s)" if len(ranked) > _SHOWN else ""
        days = f"{shown}{more}"
    return (
        f"{source}: {repeated} of {keys} {noun}(s) were already delivered on {days}: the"
        f" same file under another day's name? (more than {thresholds.max_cross_day_share:.0%}"
        " of the day's records; the marts keep the first delivery of each, so the day would"
        " publish none of its own). Deliver the day's own file and re-materialise the day;"
        f" to publish this file anyway: run tag {OVERRIDE_TAG}={source}"
    )


# --------------------------------------------------------------------------- plausibility


@dataclass(frozen=True)
class PlausibilityThresholds:
    """WARN, not block: the rows are valid by the contract but look wrong as a whole."""

    price_factor: float = 10.0  # a unit price this many times above/below the list price
    max_repeated_share: float = 0.3  # records repeating an earlier identical one in a file


def price_findings(
    lines: pl.DataFrame, products: pl.DataFrame, thresholds: PlausibilityThresholds
) -> list[str]:
    """Files whose order lines are priced far from the product's list price (per file: how
    many, the median factor, the first such row), e.g. prices sent in cents."""
    if lines.is_empty() or products.is_empty():
        return []
    factor = thresholds.price_factor
    ratio = pl.col("unit_price") / pl.col("list_price")
    # a line given away (0, where its source declares free_lines) is not mispriced
    priced = lines.join(
        products.select("sku", pl.col("list_price").cast(pl.Float64)), on="sku", how="inner"
    ).filter(pl.col("list_price") > 0, pl.col("unit_price") != 0)
    off = priced.filter((ratio >= factor) | (ratio <= 1 / factor)).sort("source_row")
    findings = []
    for (source_file,), group in off.group_by("source_file", maintain_order=True):
        first = group.row(0, named=True)
        total = priced.filter(pl.col("source_file") == source_file).height
        median = group.select(ratio.median()).item()
        findings.append(
            f"{source_file}: {group.height} of {total} line(s) priced at least {factor:g}x"
            f" away from the list price (median {median:.3g}x; prices in cents?), first"
            f" row {first['source_row']}: {first['sku']} at {first['unit_price']}"
            f" vs {first['list_price']}"
        )
    return findings


def repeated_finding(
    source: str, raw: pl.DataFrame, columns: Sequence[str], thresholds: PlausibilityThresholds
) -> str | None:
    """A file where an unusual share of records repeat an earlier identical record (a till
    file with every line sent twice: 50 %), or None."""
    readable = raw.filter(pl.col("_parse_error").is_null()).select(
        [c for c in columns if c in raw.columns]
    )
    if readable.is_empty():
        return None
    repeats = readable.height - readable.unique().height
    share = repeats / readable.height
    if share <= thresholds.max_repeated_share:
        return None
    return (
        f"{source}: {repeats} of {readable.height} record(s) ({share:.0%}) repeat an earlier"
        f" identical record (more than {thresholds.max_repeated_share:.0%}); sent twice?"
    )
