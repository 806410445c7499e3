"""The named parsers a format file can give a field, each turning one source value into a typed one.

A parser gets a value that is never empty: text from CSV, or text, numbers, booleans, dates and
datetimes from JSON Lines and Parquet. It returns the typed value (or None for an explicit "no
value" such as "N/A"), or raises ``RowError`` saying what it expected.

| name       | gives    | accepts                                                          |
|------------|----------|------------------------------------------------------------------|
| text       | str      | anything, trimmed                                                |
| decimal    | Decimal  | plain numbers: 1234, -5, 1234.50 (no exponent, NaN or Infinity)  |
| money      | Decimal  | as decimal, plus "$", thousands commas and "(1,000)" negatives    |
| datetime   | datetime | ISO 8601 date or date-time; no offset means UTC; a date is 00:00 |
| date       | datetime | the `formats` given (strptime), at 00:00 UTC                      |
| yes_no     | bool     | yes/no, y/n, true/false, t/f, 1/0; "N/A" and "none" give None     |
| us_state   | str      | state, DC and territory names -> USPS codes; unknown kept as is   |
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timezone
from decimal import Decimal
from functools import partial
from typing import Any, Callable

from ingest.errors import RowError
from ingest.us_states import state_code

__all__ = ["PARSERS", "Parser", "make_parser"]

Parser = Callable[[Any], Any]

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_YES = frozenset({"yes", "y", "true", "t", "1"})
_NO = frozenset({"no", "n", "false", "f", "0"})
_NOT_GIVEN = frozenset({"n/a", "na", "none", "null"})
_HUMAN_DIRECTIVES = {"%Y": "YYYY", "%m": "MM", "%d": "DD", "%H": "hh", "%M": "mm", "%S": "ss"}


def parse_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"

    return str(value).strip()


def parse_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return _finite(Decimal(value), value)
    if isinstance(value, float):
        # Decimal(0.1) keeps the float's binary error; repr gives the shortest text, '0.1'.
        return _finite(Decimal(repr(value)), value)

    text = str(value).strip()
    if not _NUMBER.fullmatch(text):
        raise RowError(f"{value!r} is not a number")
    return Decimal(text)


def parse_money(value: Any) -> Decimal:
    if not isinstance(value, str):
        return parse_decimal(value)

    text = value.strip().replace(",", "").replace(" ", "")
    negative = text.startswith("(") and text.endswith(")")
    text = text.strip("()").replace("$", "", 1)
    if text.startswith("-$"):
        text = "-" + text[2:]
    if not _NUMBER.fullmatch(text):
        raise RowError(f"{value!r} is not a money amount")
    return -Decimal(text) if negative else Decimal(text)


def parse_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return _as_utc(value)
    if isinstance(value, date):
        return datetime.combine(value, time(), timezone.utc)

    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise RowError(f"{value!r} is not an ISO 8601 date or date-time") from None
    return _as_utc(parsed)


def parse_date(value: Any, formats: tuple[str, ...]) -> datetime:
    if isinstance(value, date):
        return parse_datetime(value)

    text = str(value).strip()
    for form in formats:
        parsed = _strptime(text, form)
        if parsed is not None:
            return parsed.replace(tzinfo=timezone.utc)
    wanted = " or ".join(_human(form) for form in formats)
    raise RowError(f"{value!r} is not a date in the form {wanted}")


def parse_yes_no(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value

    word = str(value).strip().casefold()
    if word in _YES:
        return True
    if word in _NO:
        return False
    if word in _NOT_GIVEN:
        return None
    raise RowError(f"{value!r} is not yes/no (yes, no, y, n, true, false, 1, 0)")


def parse_us_state(value: Any) -> str:
    return state_code(str(value))


PARSERS: dict[str, Parser] = {
    "text": parse_text,
    "decimal": parse_decimal,
    "money": parse_money,
    "datetime": parse_datetime,
    "yes_no": parse_yes_no,
    "us_state": parse_us_state,
}
DATE_PARSER = "date"


def make_parser(name: str, formats: tuple[str, ...] = ()) -> Parser:
    """The parser called ``name``; ``date`` needs the strptime ``formats`` to try in order."""
    if name == DATE_PARSER:
        if not formats:
            raise ValueError("parser 'date' needs formats, e.g. formats = [\"%Y%m%d\"]")
        return partial(parse_date, formats=formats)
    if name not in PARSERS:
        known = ", ".join([*PARSERS, DATE_PARSER])
        raise ValueError(f"unknown parser {name!r}; the parsers are {known}")
    return PARSERS[name]


def _finite(number: Decimal, value: Any) -> Decimal:
    if not number.is_finite():
        raise RowError(f"{value!r} is not a number")
    return number


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _strptime(text: str, form: str) -> datetime | None:
    fast = _FAST_FORMATS.get(form)
    if fast is not None and (parsed := fast(text)) is not None:
        return parsed

    try:
        parsed = datetime.strptime(text, form)
    except ValueError:
        return None
    # strptime reads "2015111" as %Y%m%d by guessing where fields end; a compact format must
    # match digit for digit, or a shifted or mistyped date would be loaded as a wrong day.
    if re.fullmatch(r"(%[A-Za-z])+", form) and parsed.strftime(form) != text:
        return None
    return parsed


def _compact_date(text: str) -> datetime | None:
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return datetime(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _iso_date(text: str) -> datetime | None:
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        return None
    try:
        return datetime.combine(date.fromisoformat(text), time())
    except ValueError:
        return None


# strptime costs more than the rest of a row's mapping; the two commonest forms are tried
# directly first, and strptime judges whatever they do not read.
_FAST_FORMATS: dict[str, Callable[[str], datetime | None]] = {
    "%Y%m%d": _compact_date,
    "%Y-%m-%d": _iso_date,
}


def _human(form: str) -> str:
    for directive, shown in _HUMAN_DIRECTIVES.items():
        form = form.replace(directive, shown)
    return form
