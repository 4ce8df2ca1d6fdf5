"""How a declared timestamp column's text is read: one reading for parsing and cleaning.

Cleaning casts `ordered_at` (and the other timestamps) with it; parsing reads the day of an
order's time with it (`within: [..., order_day]`), so both agree on which day a row is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from aiwf_assets.ingest.spec import ColumnSpec

UTC_DTYPE = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class TimestampReading:
    value: pl.Expr  # the instant in UTC; null where the text does not parse
    naive: pl.Expr  # the wall-clock reading before its zone is applied (null if aware)
    unreadable: str  # the reason a text that does not parse gets


def read_timestamp(col: ColumnSpec, text: pl.Expr) -> TimestampReading:
    """`text` (stripped) read by the column's `timestamp_format` and `timezone`."""
    fmt = col.timestamp_format or "iso8601"
    zone = col.timezone or "UTC"
    if fmt == "epoch_s":
        seconds = text.cast(pl.Int64, strict=False)
        seconds = pl.when(seconds.abs() < 10**11).then(seconds)  # beyond year 5000: garbage
        value = pl.from_epoch(seconds, "s").dt.cast_time_unit("us").dt.replace_time_zone("UTC")
        return TimestampReading(value, pl.lit(None, pl.Datetime("us")), "not epoch seconds")
    if fmt == "iso8601":
        iso = text.str.replace(" ", "T", literal=True)
        aware = iso.str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%.f%#z", time_zone="UTC", time_unit="us", strict=False
        )
        naive = iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False)
        expected = "ISO 8601"
    elif any(z in fmt for z in ("%z", "%#z", "%:z")):
        aware = text.str.to_datetime(fmt, time_zone="UTC", time_unit="us", strict=False)
        naive = pl.lit(None, pl.Datetime("us"))
        expected = f"format '{fmt}'"
    else:
        naive = text.str.to_datetime(fmt, time_unit="us", strict=False)
        expected = f"format '{fmt}'"
        if date_only(fmt):
            # a day without a time is that day wherever it was written: read at noon UTC,
            # so its UTC day (order_date) and its local day are the day written (a Berlin
            # midnight would be 23:00 UTC the day before)
            value = naive.dt.replace_time_zone("UTC") + pl.duration(hours=12)
            return TimestampReading(value, naive, f"not a date in {expected}")
        aware = pl.lit(None, UTC_DTYPE)
    # local wall-clock times: the hour skipped by a DST change does not exist (-> null);
    # the repeated hour is read as its first occurrence
    local = naive.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
    value = pl.coalesce(aware, local.dt.convert_time_zone("UTC"))
    return TimestampReading(value, naive, f"not a timestamp in {expected}")


# strftime directives that read a time of day (or an instant): a format without any is a date
_TIME_DIRECTIVE = re.compile(r"%[-#:]?[HIMSfpzZTRrcXsklP]")


def date_only(fmt: str) -> bool:
    """Whether a strftime format reads a day without a time (`%d.%m.%Y`, `%Y%m%d`)."""
    return _TIME_DIRECTIVE.search(fmt.replace("%%", "")) is None


def local_day(col: ColumnSpec, text: pl.Expr) -> pl.Expr:
    """The day (YYYY-MM-DD) a timestamp column's text falls on where it was written: read as
    cleaning reads it, in the column's `timezone` (UTC without one); null when unreadable."""
    value = read_timestamp(col, text.str.strip_chars()).value
    return value.dt.convert_time_zone(col.timezone or "UTC").dt.date().cast(pl.String)
