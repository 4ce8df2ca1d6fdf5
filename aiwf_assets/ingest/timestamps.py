"""How a declared timestamp column's text is read: one reading for parsing and cleaning.

Cleaning casts `ordered_at` (and the other timestamps) with it; parsing reads the day of an
order's time with it (`within: [..., order_day]`, the business day when the source declares
`day_ends_at`), so both agree on which day a row is.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import polars as pl

from aiwf_assets.ingest.spec import TIMESTAMP_KEYWORDS, ColumnSpec

UTC_DTYPE = pl.Datetime("us", "UTC")
# the version of this reading, for the raw versions of sources whose parsing reads times
# (ingest/landing.py `raw_code_version`); ts-2: ISO 8601 without seconds, in the basic format
# and with a space before the offset
TIMESTAMP_READING = "ts-2"


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
        aware, naive = _iso8601(text)
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


# ISO 8601 as exports write it, tried in this order (the first reading that parses wins, so
# a text one of the earlier forms reads keeps that reading): extended with seconds (and
# fraction), extended without seconds (`2026-01-05T10:30+01:00`), basic
# (`20260105T103000+0100`), basic without seconds. `%#z` reads `Z`, `+01`, `+0100` and
# `+01:00`; an offset may follow a space. The separator between date and time is `T` or a space.
_ISO_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y%m%dT%H%M%S%.f", "%Y%m%dT%H%M",
)


def _iso8601(text: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(aware, naive) readings of ISO 8601 text: the instant of a text with an offset, the
    wall-clock time of one without (null where the text is not that kind)."""
    iso = text.str.replace(" ", "T", literal=True)  # `2026-01-05 10:30:00` (a space for T)
    first, *rest = _ISO_FORMATS
    aware = iso.str.to_datetime(f"{first}%#z", time_zone="UTC", time_unit="us", strict=False)
    naive = iso.str.to_datetime(first, time_unit="us", strict=False)
    # the other forms only for the texts the first did not read (null elsewhere): evaluated
    # lazily, as cleaning casts, the common case costs a pass over nulls per form, not a parse
    left = aware.is_null() & naive.is_null()
    iso_left, text_left = pl.when(left).then(iso), pl.when(left).then(text)
    # extended forms as written too: `2026-01-05T10:30:00 +01:00` (its space is not the T's)
    tries = [(text_left, first), *((t, fmt) for fmt in rest for t in (iso_left, text_left))]
    aware = pl.coalesce(
        aware,
        *(
            t.str.to_datetime(f"{fmt}%#z", time_zone="UTC", time_unit="us", strict=False)
            for t, fmt in tries
            if t is iso_left or "-" in fmt
        ),
    )
    naive = pl.coalesce(
        naive, *(iso_left.str.to_datetime(fmt, time_unit="us", strict=False) for fmt in rest)
    )
    return aware, naive


# strftime directives that read a time of day (or an instant): a format without any is a date
_TIME_DIRECTIVE = re.compile(r"%[-#:]?[HIMSfpzZTRrcXsklP]")


def date_only(fmt: str) -> bool:
    """Whether a strftime format reads a day without a time (`%d.%m.%Y`, `%Y%m%d`)."""
    return _TIME_DIRECTIVE.search(fmt.replace("%%", "")) is None


def local_day(col: ColumnSpec, text: pl.Expr, day_ends: dt.time | None = None) -> pl.Expr:
    """The day (YYYY-MM-DD) a timestamp column's text falls on where it was written: read as
    cleaning reads it, in the column's `timezone` (UTC without one); null when unreadable.

    `day_ends`: the local time a business day that runs past midnight ends (04:00: a sale at
    01:45 on the 6th is the 5th's, one at 04:00 the 6th's), counted on the wall clock, so a
    clock change that night moves nothing; a date without a time is the day written."""
    value = read_timestamp(col, text.str.strip_chars()).value
    wall_clock = value.dt.convert_time_zone(col.timezone or "UTC")
    fmt = col.timestamp_format or "iso8601"
    if day_ends is not None and (fmt in TIMESTAMP_KEYWORDS or not date_only(fmt)):
        past_midnight = pl.duration(hours=day_ends.hour, minutes=day_ends.minute)
        wall_clock = wall_clock.dt.replace_time_zone(None) - past_midnight
    return wall_clock.dt.date().cast(pl.String)
