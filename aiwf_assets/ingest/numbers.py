"""Numbers as sources write them: decimal marks, thousands separators, `2.0` for 2.

Read from the stripped text of a column (`ColumnSpec.decimal` says which mark is the decimal
one). Cleaning types every int and float column with these; parsing reads an order's stated
total and its lines' quantities and prices with them (`ingest.parse._with_checked_totals`),
so both read a number alike.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from aiwf_assets.ingest.spec import ColumnSpec, SourceSpec

# 1.234,56 or 1234,56; a thousands group never follows a leading 0, so 0.999 is rejected
# (a decimal point), not read as 999
_FLOAT_COMMA_RE = r"^[+-]?([1-9]\d{0,2}(\.\d{3})+|\d+)(,\d+)?$"
_INT_COMMA_RE = r"^[+-]?([1-9]\d{0,2}(\.\d{3})+|\d+)(,0*)?$"
_GROUPED_RE = r"^[+-]?[1-9]\d{0,2}(\.\d{3})+$"  # 1.000, 12.500.000: thousands or decimals?
# with `decimal: "."` a comma groups thousands: 1,299.00 or 1,299; 0,999 and 1,5 are refused
_FLOAT_DOT_RE = r"^[+-]?[1-9]\d{0,2}(,\d{3})+(\.\d+)?$"
_INT_DOT_RE = r"^[+-]?[1-9]\d{0,2}(,\d{3})+(\.0*)?$"
_COMMA_GROUPED_RE = r"^[+-]?[1-9]\d{0,2}(\.\d{3})+,\d+$"  # 1.299,00 (undeclared: refused)
_THOUSANDS = (
    "a thousands separator? declare the column's decimal: '.' (1,299.00 = 1299) or ','"
    " (1.299,00 = 1299)"
)
_NOT_INT_COMMA = "not an integer with decimal comma"
# a value quoted in a reason is cut to this many characters (free text in a wrong column)
QUOTE_CHARS = 40
_AMBIGUOUS_INT = (
    "a thousands separator or three decimals? declare the column's decimal: ',' (1.000 ="
    " 1000) or '.' (1.000 = 1)"
)


@dataclass(frozen=True)
class Reading:
    value: pl.Expr  # from the stripped text; null where the text does not parse
    problem: Callable[[pl.Expr], pl.Expr] | None  # text -> what is wrong (on failing rows)


def as_read(spec: SourceSpec, col: ColumnSpec) -> ColumnSpec:
    """A Parquet number is written with a decimal point and no thousands separator (a
    decimal(10,3) quantity reads `1.000`): not ambiguous, so read with `.`."""
    if spec.format == "parquet" and col.type == "int" and col.decimal is None:
        return dataclasses.replace(col, decimal=".")
    return col


def read_number(col: ColumnSpec, text: pl.Expr) -> Reading:
    """`text` (stripped, null when empty) as the int or float column `col` reads it."""
    return read_int(col, text) if col.type == "int" else read_float(col, text)


def failed_as(message: str) -> Callable[[pl.Expr], pl.Expr]:
    return lambda _text: pl.lit(message)


def plain_number(col: ColumnSpec, text: pl.Expr) -> pl.Expr:
    """The text of a number as the column's `symbol` and `negatives` say it is written, with
    the sign in front and no currency sign (`$5.25-` -> `-5.25`), for the decimal rules."""
    if col.symbol is not None:
        text = without_symbol(col.symbol, text)
    for form in col.negatives:
        text = _NEGATIVE_FORMS[form](text)
    return text


def per_unit(total: pl.Expr, quantity: pl.Expr) -> pl.Expr:
    """The unit price of a line whose price field holds its total (`line_total`): the total
    over the quantity (a return's negative total over its negative quantity is a positive
    price); a quantity of 0 leaves the total (the row is refused for its quantity)."""
    return pl.when(quantity != 0).then(total / quantity).otherwise(total)


def _trailing_minus(text: pl.Expr) -> pl.Expr:
    """`5,25-` and `1-` (SAP) as `-5,25` and `-1`; a number signed twice is left as written."""
    return text.str.replace(r"^([0-9][0-9.,]*)\s*-$", "-${1}")


def _parenthesised(text: pl.Expr) -> pl.Expr:
    """`(5.25)` (accounting) as `-5.25`; a signed number in parentheses is left as written."""
    return text.str.replace(r"^\(\s*([0-9][0-9.,]*)\s*\)$", "-${1}")


_NEGATIVE_FORMS: dict[str, Callable[[pl.Expr], pl.Expr]] = {
    "trailing_minus": _trailing_minus,
    "parentheses": _parenthesised,
}


def _as_written(
    read: Callable[[ColumnSpec, pl.Expr], Reading], col: ColumnSpec, text: pl.Expr
) -> Reading:
    """`read` of the plain text of a column declaring `symbol` or `negatives`; its problem
    is told from the plain text too (a thousands separator is named as such)."""
    bare = dataclasses.replace(col, symbol=None, negatives=())
    plain = read(bare, plain_number(col, text))
    problem = plain.problem
    assert problem is not None
    return Reading(plain.value, lambda t: problem(plain_number(col, t)))


def read_int(col: ColumnSpec, text: pl.Expr) -> Reading:
    """2 and 2.0 are the same integer; 2.5, 'two' and 1e3 are not integers. With `decimal:
    ","` a dot groups thousands (1.000 = 1000; 2,0 = 2). Undeclared, 1.000 and 2.500 are
    refused as ambiguous: a thousand and two and a half thousand in a German export, 1 and
    2.5 in one that writes three decimals; the column's `decimal` says which. With
    `negatives`, `1-` or `(1)` is -1."""
    if col.negatives:
        return _as_written(read_int, col, text)
    if col.decimal == ",":
        plain = pl.when(text.str.contains(_INT_COMMA_RE)).then(
            text.str.replace_all(".", "", literal=True).str.replace(r",0*$", "")
        )
        return Reading(plain.cast(pl.Int64, strict=False), failed_as(_NOT_INT_COMMA))
    value = text.str.replace(r"\.0*$", "").cast(pl.Int64, strict=False)
    if col.decimal == ".":
        grouped = pl.when(text.str.contains(_INT_DOT_RE)).then(
            text.str.replace_all(",", "", literal=True).str.replace(r"\.0*$", "")
        )
        return Reading(
            pl.coalesce(value, grouped.cast(pl.Int64, strict=False)),
            failed_as("not an integer"),
        )
    grouped = text.str.contains(_GROUPED_RE)
    return Reading(
        pl.when(~grouped).then(value),
        lambda t: pl.when(t.str.contains(_GROUPED_RE))
        .then(pl.lit(_AMBIGUOUS_INT))
        .otherwise(pl.lit("not an integer")),
    )


def read_float(col: ColumnSpec, text: pl.Expr) -> Reading:
    """19.99 (and, with `decimal: ","`, 19,99 and 1.299,00; with `decimal: "."`, 1,299.00);
    undeclared, a thousands separator is refused as ambiguous. With a `symbol`, the amount
    may be written with it (`without_symbol`); with `negatives`, `5,25-` or `(5.25)`."""
    if col.symbol is not None or col.negatives:
        return _as_written(read_float, col, text)
    if col.decimal == ",":
        # only a comma may be the decimal mark, so 19.99 is rejected instead of read as 1999
        plain = pl.when(text.str.contains(_FLOAT_COMMA_RE)).then(
            text.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True)
        )
        problem = failed_as("not a number with decimal comma")
    elif col.decimal == ".":
        # declared: a comma can only group thousands (1,299.00); 1,5 stays refused
        plain = pl.when(text.str.contains(_FLOAT_DOT_RE)).then(
            text.str.replace_all(",", "", literal=True)
        ).otherwise(text)
        problem = failed_as("not a number")
    else:
        plain = text

        def problem(t: pl.Expr) -> pl.Expr:
            grouped = t.str.contains(_FLOAT_DOT_RE) | t.str.contains(_COMMA_GROUPED_RE)
            return pl.when(grouped).then(pl.lit(_THOUSANDS)).otherwise(pl.lit("not a number"))

    number = plain.cast(pl.Float64, strict=False)
    return Reading(pl.when(number.is_finite()).then(number), problem)


def without_symbol(symbol: str, text: pl.Expr) -> pl.Expr:
    """An amount written with its currency sign as a plain number: the sign before or after
    the number, a space between them or not, a minus before or after the sign (`$4.50`,
    `-$0.50`, `$-0.50`, `4,50 €`, `- € 3`), a negative in accounting parentheses (`($1.00)`
    = -1.00). Text with the sign twice, another sign, or parentheses around a signed
    number stays as written, so it is refused as not a number."""
    sign = re.escape(symbol)
    parenthesised = text.str.contains(r"^\(.*\)$")
    inner = text.str.replace(r"^\((.*)\)$", "${1}").str.strip_chars()
    plain = (
        inner.str.replace(rf"^([+-]?)\s*{sign}\s*", "${1}")
        .str.replace(rf"\s*{sign}$", "")
        .str.replace(r"^([+-])\s+", "${1}")
    )
    once = text.str.count_matches(symbol, literal=True) <= 1
    return (
        pl.when(~once)
        .then(text)
        .when(parenthesised & plain.str.contains(r"^[+-]"))
        .then(text)
        .when(parenthesised)
        .then(pl.lit("-") + plain)
        .otherwise(plain)
    )


def shortened(text: pl.Expr) -> pl.Expr:
    """`text` cut to QUOTE_CHARS characters and an ellipsis, to quote in a reason."""
    return (
        pl.when(text.str.len_chars() > QUOTE_CHARS)
        .then(text.str.slice(0, QUOTE_CHARS) + "…")
        .otherwise(text)
    )


def shortened_text(text: str) -> str:
    """`shortened` for one value."""
    return text if len(text) <= QUOTE_CHARS else f"{text[:QUOTE_CHARS]}…"
