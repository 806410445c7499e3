"""Turning one source record into alert field values, as a format file says.

A ``RowMapper`` is built once per file from a ``FormatSpec``: each field becomes a small step
function, computed top to bottom in the order the format file lists them, so a rule or a
``field =`` copy can use any field above it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from decimal import Decimal
from typing import Any, Callable

from ingest.errors import RowError
from ingest.formats import Condition, FieldSpec, FormatSpec, Rule, column_key
from ingest.parsers import make_parser, parse_decimal, parse_text

__all__ = ["Record", "RowMapper"]

logger = logging.getLogger(__name__)

# A record's values keyed by column_key(header name).
Record = dict[str, Any]
Values = dict[str, Any]
Step = Callable[[Record, Values], Any]
Test = Callable[[Any], bool]

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


class RowMapper:
    """Computes the alert fields of one file's records; holds the per-file repeat counters."""

    def __init__(self, spec: FormatSpec, columns: list[str], where: str) -> None:
        self.spec = spec
        self._present = {column_key(name) for name in columns}
        self._repeats: dict[str, int] = {}
        self._steps = [(name, self._field_step(field)) for name, field in spec.fields.items()]
        self._log_absent(where)

    def map(self, record: Record) -> Values:
        """The field values of ``record`` (None where absent), or RowError naming the field."""
        values: Values = {}
        for name, step in self._steps:
            try:
                values[name] = step(record, values)
            except RowError as error:
                raise RowError(f"{name}{self._column_note(name)}: {error}") from None
        return values

    def _field_step(self, field: FieldSpec) -> Step:
        if _is_plain_text_column(field):
            return _text_column_step(column_key(field.column or ""), field.default)

        source = self._source(field)
        parse = make_parser(field.parser, tuple(field.formats)) if field.field is None else None
        lookup = _value_map(field)
        default = field.default

        def step(record: Record, values: Values) -> Any:
            value = lookup(source(record, values))
            if value is None and default is not None:
                value = default
            if value is None or parse is None:
                return value
            return _prefixed(field.prefix, parse(value))

        return step

    def _source(self, field: FieldSpec) -> Step:
        if field.column is not None:
            return _column_getter([field.column])
        if field.columns is not None:
            return _column_getter(field.columns)
        if field.template is not None:
            return _template_getter(field.template)
        if field.hash is not None:
            return self._hash_getter(field)
        if field.field is not None:
            copied = field.field
            return lambda record, values: values.get(copied)
        if field.rules is not None:
            return _rules_getter(field.rules)
        constant = field.value
        return lambda record, values: constant

    def _hash_getter(self, field: FieldSpec) -> Step:
        keys = [column_key(name) for name in field.hash or []]
        length = field.hash_length
        repeat = field.repeat_suffix

        def get(record: Record, values: Values) -> str:
            joined = "|".join(_text(record.get(key)) for key in keys)
            digest = hashlib.sha256(joined.encode("utf-8")).hexdigest()[:length]
            return self._numbered(digest) if repeat else digest

        return get

    def _numbered(self, digest: str) -> str:
        # The n-th repeat of the same key in one file gets "-n": identical rows are separate
        # records upstream, and numbering in file order gives the same ids on every re-run.
        seen = self._repeats.get(digest, 0)
        self._repeats[digest] = seen + 1
        return f"{digest}-{seen}" if seen else digest

    def _column_note(self, name: str) -> str:
        field = self.spec.fields[name]
        if field.column is not None:
            return f" (column {field.column!r})"
        if field.columns is not None:
            return f" (first of columns {', '.join(repr(c) for c in field.columns)})"
        return ""

    def _log_absent(self, where: str) -> None:
        wanted = {name for field in self.spec.fields.values() for name in _columns_of(field)}
        absent = sorted(name for name in wanted if column_key(name) not in self._present)
        if absent:
            logger.info("%s has no column %s; those values count as empty", where,
                        ", ".join(repr(name) for name in absent))


def _is_plain_text_column(field: FieldSpec) -> bool:
    plain = not (field.map or field.starts_with or field.prefix)
    return field.column is not None and field.parser == "text" and plain


def _text_column_step(key: str, default: str | None) -> Step:
    # Most fields are a column's text as it stands; one call per value instead of four keeps
    # mapping a small share of a load's time.
    def step(record: Record, values: Values) -> Any:
        value = record.get(key)
        if value.__class__ is str:
            return value.strip() or default
        return default if value is None else parse_text(value)

    return step


def _column_getter(names: list[str]) -> Step:
    keys = [column_key(name) for name in names]
    if len(keys) == 1:
        key = keys[0]
        return lambda record, values: _present(record.get(key))

    def first(record: Record, values: Values) -> Any:
        for key in keys:
            value = _present(record.get(key))
            if value is not None:
                return value
        return None

    return first


def _template_getter(template: str) -> Step:
    keys = [column_key(name) for name in _PLACEHOLDER.findall(template)]

    def fill(record: Record, values: Values) -> str | None:
        parts = [_present(record.get(key)) for key in keys]
        if any(part is None for part in parts):
            return None
        texts = iter(_text(part) for part in parts)
        return _PLACEHOLDER.sub(lambda match: next(texts), template)

    return fill


def _rules_getter(rules: list[Rule]) -> Step:
    compiled = [(rule.value, [_test(c) for c in rule.any], [_test(c) for c in rule.all])
                for rule in rules]

    def first_match(record: Record, values: Values) -> str | None:
        for value, any_of, all_of in compiled:
            if any_of and not any(test(record, values) for test in any_of):
                continue
            if all(test(record, values) for test in all_of):
                return value
        return None

    return first_match


def _test(condition: Condition) -> Step:
    check = _check(condition)
    if condition.field is not None:
        name = condition.field
        return lambda record, values: check(values.get(name))

    key = column_key(condition.column or "")
    parse = make_parser(condition.parser, tuple(condition.formats))
    where = condition.column

    def test(record: Record, values: Values) -> bool:
        raw = _present(record.get(key))
        try:
            return check(None if raw is None else parse(raw))
        except RowError as error:
            raise RowError(f"column {where!r} {error}") from None

    return test


def _check(condition: Condition) -> Test:
    if condition.is_empty is not None:
        wanted = condition.is_empty
        return lambda value: (value is None) == wanted
    if condition.at_least is not None:
        floor = Decimal(str(condition.at_least))
        return lambda value: value is not None and parse_decimal(value) >= floor
    if condition.equals is not None:
        return _equals(condition.equals)
    if condition.one_of is not None:
        choices = {choice.casefold() for choice in condition.one_of}
        return lambda value: value is not None and _text(value).casefold() in choices
    if condition.starts_with is not None:
        start = condition.starts_with.casefold()
        return lambda value: value is not None and _text(value).casefold().startswith(start)
    part = (condition.contains or "").casefold()
    return lambda value: value is not None and part in _text(value).casefold()


def _equals(expected: str | bool | int | float) -> Test:
    if isinstance(expected, bool):
        return lambda value: value is expected
    if isinstance(expected, int | float):
        number = Decimal(str(expected))
        return lambda value: value is not None and parse_decimal(value) == number
    text = expected.casefold()
    return lambda value: value is not None and _text(value).casefold() == text


def _value_map(field: FieldSpec) -> Callable[[Any], Any]:
    exact = {key.strip().casefold(): target for key, target in field.map.items()}
    starts = [(key.strip().casefold(), target) for key, target in field.starts_with.items()]
    if not exact and not starts:
        return lambda value: value

    def translate(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        folded = value.casefold()
        if folded in exact:
            return exact[folded]
        return next((target for start, target in starts if folded.startswith(start)), value)

    return translate


def _columns_of(field: FieldSpec) -> list[str]:
    names = [*([field.column] if field.column else []), *(field.columns or []), *(field.hash or [])]
    names += _PLACEHOLDER.findall(field.template or "")
    conditions = [c for rule in field.rules or [] for c in [*rule.any, *rule.all]]
    return names + [c.column for c in conditions if c.column is not None]


def _present(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip() or None
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    return str(value)


def _prefixed(prefix: str, value: Any) -> Any:
    if prefix and isinstance(value, str):
        return prefix + value
    return value
