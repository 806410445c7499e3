"""Turning one source record into alert field values, as a format file says.

A ``RowMapper`` is built once per file from a ``FormatSpec``: each field becomes a small step
function, computed top to bottom in the order the format file lists them, so a rule or a
``field =`` copy can use any field above it. Column positions, parsers and tests are settled
when the mapper is built, so mapping a row only runs the closures it needs.
"""

from __future__ import annotations

import hashlib
import logging
import re
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from typing import Any, Callable, Sequence

from ingest.errors import RowError
from ingest.formats import Condition, FieldSpec, FormatSpec, Rule, column_key
from ingest.parsers import Parser, make_parser, parse_decimal, parse_text

__all__ = ["Record", "Row", "RowMapper"]

logger = logging.getLogger(__name__)

# A record's values keyed by column_key(header name), as JSON Lines gives them.
Record = dict[str, Any]
# A record's values in the order of the source's columns, as CSV and Parquet give them.
Row = Sequence[Any]
# The fields computed so far; a field whose value is absent has no entry.
Values = dict[str, Any]
Getter = Callable[[Row], Any]
Step = Callable[[Row, Values], Any]
Test = Callable[[Any], bool]

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
# Parsed values kept per parser and file: dates, states and amounts repeat from row to row, and
# several rules of one row may test the same column.
_PARSED_KEPT = 4096


class RowMapper:
    """Computes the alert fields of one file's records; holds the per-file repeat counters."""

    def __init__(
        self, spec: FormatSpec, columns: list[str], where: str, *, keyed: bool = False
    ) -> None:
        self.spec = spec
        self._present = {column_key(name) for name in columns}
        self._repeats: dict[str, int] = {}
        self._parsers: dict[tuple[str, tuple[str, ...]], _Parsing] = {}
        self._log_absent(where)
        # A keyed record is first laid out as a row of just the columns the format reads.
        self._keys = sorted({column_key(name) for field in spec.fields.values()
                             for name in _columns_of(field)}) if keyed else None
        layout = self._keys if self._keys is not None else [column_key(c) for c in columns]
        self._positions = {key: index for index, key in enumerate(layout)}
        self._steps = [(name, self._field_step(field)) for name, field in spec.fields.items()]

    def map(self, record: Row | Record) -> Values:
        """The field values of ``record`` (absent ones left out), or RowError naming the field.

        ``record`` is a row in the order of ``columns``, or with ``keyed`` a dict keyed by
        column_key(name), whose keys may differ from record to record (JSON Lines).
        """
        if self._keys is not None:
            record = [record.get(key) for key in self._keys]  # type: ignore[union-attr]
        values: Values = {}
        name = ""
        try:
            for name, step in self._steps:
                value = step(record, values)  # type: ignore[arg-type]
                if value is not None:
                    values[name] = value
        except RowError as error:
            raise RowError(f"{name}{self._column_note(name)}: {error}") from None
        return values

    def _getter(self, name: str) -> Getter:
        index = self._positions.get(column_key(name))
        return _absent if index is None else itemgetter(index)

    def _tuple_getter(self, names: list[str]) -> Callable[[Row], tuple[Any, ...]]:
        indexes = [self._positions.get(column_key(name)) for name in names]
        if len(indexes) > 1 and None not in indexes:
            return itemgetter(*indexes)  # type: ignore[arg-type]
        getters = [self._getter(name) for name in names]
        return lambda row: tuple(get(row) for get in getters)

    def _parsing(self, name: str, formats: list[str]) -> _Parsing:
        key = (name, tuple(formats))
        if key not in self._parsers:
            self._parsers[key] = _Parsing(make_parser(name, key[1]))
        return self._parsers[key]

    def _field_step(self, field: FieldSpec) -> Step:
        if _is_plain_text_column(field):
            return _text_column_step(self._getter(field.column or ""), field.default)

        translate = _value_map(field)
        if translate is None and (field.column is not None or field.columns is not None):
            getters = [self._getter(name) for name in field.columns or [field.column or ""]]
            return _parsed_columns(getters, self._parsing(field.parser, field.formats),
                                   field.default, field.prefix)

        source = self._source(field)
        if translate is not None:
            source = _translated(source, translate)
        if field.field is not None:
            return _defaulted(source, field.default)
        if field.parser == "text":
            return _text_step(source, field.default, field.prefix)
        return _parsed(source, self._parsing(field.parser, field.formats), field.default,
                       field.prefix)

    def _source(self, field: FieldSpec) -> Step:
        if field.column is not None:
            return _column_source(self._getter(field.column))
        if field.columns is not None:
            return _first_source([self._getter(name) for name in field.columns])
        if field.template is not None:
            return self._template_source(field.template)
        if field.hash is not None:
            return self._hash_source(field)
        if field.field is not None:
            copied = field.field
            return lambda row, values: values.get(copied)
        if field.rules is not None:
            return _rules_source([self._rule(rule) for rule in field.rules])
        constant = field.value
        return lambda row, values: constant

    def _template_source(self, template: str) -> Step:
        getters = [self._getter(name) for name in _PLACEHOLDER.findall(template)]

        def fill(row: Row, values: Values) -> str | None:
            parts = [_present(get(row)) for get in getters]
            if any(part is None for part in parts):
                return None
            texts = iter(_text(part) for part in parts)
            return _PLACEHOLDER.sub(lambda match: next(texts), template)

        return fill

    def _hash_source(self, field: FieldSpec) -> Step:
        parts = self._tuple_getter(field.hash or [])
        length = field.hash_length
        numbered = self._numbered if field.repeat_suffix else None

        def digest(row: Row, values: Values) -> str:
            joined = "|".join([value.strip() if value.__class__ is str else _text(value)
                               for value in parts(row)])
            text = hashlib.sha256(joined.encode("utf-8")).hexdigest()[:length]
            return text if numbered is None else numbered(text)

        return digest

    def _numbered(self, digest: str) -> str:
        # The n-th repeat of the same key in one file gets "-n": identical rows are separate
        # records upstream, and numbering in file order gives the same ids on every re-run.
        seen = self._repeats.get(digest, 0)
        self._repeats[digest] = seen + 1
        return f"{digest}-{seen}" if seen else digest

    def _rule(self, rule: Rule) -> tuple[str, Step]:
        any_of = _any([self._test(condition) for condition in rule.any])
        all_of = _all([self._test(condition) for condition in rule.all])
        if any_of is None:
            return rule.value, all_of or _always
        if all_of is None:
            return rule.value, any_of

        def both(row: Row, values: Values) -> bool:
            return any_of(row, values) and all_of(row, values)

        return rule.value, both

    def _test(self, condition: Condition) -> Step:
        check = _check(condition)
        if condition.field is not None:
            name = condition.field
            return lambda row, values: check(values.get(name))

        get = self._getter(condition.column or "")
        parsing = self._parsing(condition.parser, condition.formats)
        parse, kept = parsing.parse, parsing.kept
        where = condition.column

        def test(row: Row, values: Values) -> bool:
            raw = get(row)
            raw = (raw.strip() or None) if raw.__class__ is str else _present(raw)
            try:
                if raw is None:
                    return check(None)
                if raw.__class__ is str:
                    return check(raw if kept is _itself else kept(raw))
                return check(parse(raw))
            except RowError as error:
                raise RowError(f"column {where!r} {error}") from None

        return test

    def _column_note(self, name: str) -> str:
        field = self.spec.fields.get(name)
        if field is None:
            return ""
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


class _Parsing:
    """A parser, and for text the same parser remembering its last results: ``kept``."""

    def __init__(self, parse: Parser) -> None:
        self.parse = parse
        # Only text is kept: 1, 1.0 and True are equal keys that parse differently. Trimmed
        # text parses to itself.
        self.kept: Parser = _itself if parse is parse_text else lru_cache(_PARSED_KEPT)(parse)


def _itself(value: Any) -> Any:
    return value


def _absent(row: Row) -> None:
    return None


def _always(row: Row, values: Values) -> bool:
    return True


def _is_plain_text_column(field: FieldSpec) -> bool:
    plain = not (field.map or field.starts_with or field.prefix)
    return field.column is not None and field.parser == "text" and plain


def _text_column_step(get: Getter, default: str | None) -> Step:
    # Most fields are a column's text as it stands: one call per value.
    def step(row: Row, values: Values) -> Any:
        value = get(row)
        if value.__class__ is str:
            return value.strip() or default
        return default if value is None else parse_text(value)

    return step


def _column_source(get: Getter) -> Step:
    return lambda row, values: _present(get(row))


def _first_source(getters: list[Getter]) -> Step:
    def first(row: Row, values: Values) -> Any:
        for get in getters:
            value = _present(get(row))
            if value is not None:
                return value
        return None

    return first


def _translated(source: Step, translate: Callable[[Any], Any]) -> Step:
    return lambda row, values: translate(source(row, values))


def _defaulted(source: Step, default: str | None) -> Step:
    if default is None:
        return source

    def step(row: Row, values: Values) -> Any:
        value = source(row, values)
        return default if value is None else value

    return step


def _text_step(source: Step, default: str | None, prefix: str) -> Step:
    def step(row: Row, values: Values) -> Any:
        value = source(row, values)
        if value is None:
            if default is None:
                return None
            value = default
        text = value.strip() if value.__class__ is str else parse_text(value)
        return prefix + text if prefix else text

    return step


def _parsed(source: Step, parsing: _Parsing, default: str | None, prefix: str) -> Step:
    parse = parsing.parse

    def step(row: Row, values: Values) -> Any:
        value = source(row, values)
        if value is None:
            if default is None:
                return None
            value = default
        return _prefixed(prefix, parse(value))

    return step


def _parsed_columns(
    getters: list[Getter], parsing: _Parsing, default: str | None, prefix: str
) -> Step:
    # The first column that is not empty, parsed: the commonest field, so in one function.
    parse, kept = parsing.parse, parsing.kept

    def step(row: Row, values: Values) -> Any:
        for get in getters:
            value = get(row)
            if value.__class__ is str:
                value = value.strip()
                if value:
                    return kept(value)
            elif value is not None:
                value = _present(value)
                if value is not None:
                    return parse(value)
        return None if default is None else parse(default)

    if not prefix:
        return step
    return lambda row, values: _prefixed(prefix, step(row, values))


def _rules_source(rules: list[tuple[str, Step]]) -> Step:
    def first_match(row: Row, values: Values) -> str | None:
        for value, holds in rules:
            if holds(row, values):
                return value
        return None

    return first_match


def _any(tests: list[Step]) -> Step | None:
    if len(tests) <= 1:
        return tests[0] if tests else None

    def any_holds(row: Row, values: Values) -> bool:
        for test in tests:
            if test(row, values):
                return True
        return False

    return any_holds


def _all(tests: list[Step]) -> Step | None:
    if len(tests) <= 1:
        return tests[0] if tests else None

    def all_hold(row: Row, values: Values) -> bool:
        for test in tests:
            if not test(row, values):
                return False
        return True

    return all_hold


def _check(condition: Condition) -> Test:
    if condition.is_empty is not None:
        wanted = condition.is_empty
        return lambda value: (value is None) == wanted
    if condition.at_least is not None:
        return _at_least(Decimal(str(condition.at_least)))
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


def _at_least(floor: Decimal) -> Test:
    def at_least(value: Any) -> bool:
        if value.__class__ is Decimal and value.is_finite():
            return value >= floor
        return value is not None and parse_decimal(value) >= floor

    return at_least


def _equals(expected: str | bool | int | float) -> Test:
    if isinstance(expected, bool):
        return lambda value: value is expected
    if isinstance(expected, int | float):
        number = Decimal(str(expected))
        return lambda value: value is not None and parse_decimal(value) == number
    text = expected.casefold()
    return lambda value: value is not None and _text(value).casefold() == text


def _value_map(field: FieldSpec) -> Callable[[Any], Any] | None:
    exact = {key.strip().casefold(): target for key, target in field.map.items()}
    starts = [(key.strip().casefold(), target) for key, target in field.starts_with.items()]
    if not exact and not starts:
        return None

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
    if value.__class__ is str or isinstance(value, str):
        return value.strip() or None
    return value


def _text(value: Any) -> str:
    if value.__class__ is str:
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    return str(value)


def _prefixed(prefix: str, value: Any) -> Any:
    if prefix and isinstance(value, str):
        return prefix + value
    return value
