"""Source formats: the declarative TOML files that say how a source's columns become alerts.

The built-in ones live in ``ingest/formats/<name>.toml``; each file's comments document the keys
(``native.toml`` is the shortest, ``cfpb.toml`` explains rules). A user's own file, passed by path,
is read the same way and checked just as strictly: unknown keys, parsers and fields are errors
that name the file, so a typo never silently drops a mapping.
"""

from __future__ import annotations

import logging
import tomllib
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path

import msgspec

from ingest.alert import ALERT_FIELDS, REQUIRED_FIELDS
from ingest.errors import FormatError, IngestError
from ingest.parsers import make_parser

__all__ = [
    "Condition",
    "FieldSpec",
    "FormatSpec",
    "Rule",
    "builtin_formats",
    "check_columns",
    "column_key",
    "detect_format",
    "load_format",
]

logger = logging.getLogger(__name__)

_SOURCES = ("column", "columns", "template", "hash", "field", "value", "rules")
_TESTS = ("equals", "one_of", "starts_with", "contains", "at_least", "is_empty")


class Condition(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One test on a source column or on a field computed above; exactly one test key is set."""

    column: str | None = None
    field: str | None = None
    parser: str = "text"
    formats: list[str] = []
    equals: str | bool | int | float | None = None
    one_of: list[str] | None = None
    starts_with: str | None = None
    contains: str | None = None
    at_least: int | float | str | None = None
    is_empty: bool | None = None


class Rule(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Gives ``value`` when any condition of ``any`` holds and every condition of ``all`` does."""

    value: str
    any: list[Condition] = []
    all: list[Condition] = []


class FieldSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How one alert field is computed: one source key, then optional map, parser and default."""

    column: str | None = None
    columns: list[str] | None = None
    template: str | None = None
    hash: list[str] | None = None
    hash_length: int = 16
    repeat_suffix: bool = False
    field: str | None = None
    value: str | None = None
    rules: list[Rule] | None = None
    prefix: str = ""
    map: dict[str, str] = {}
    starts_with: dict[str, str] = {}
    parser: str = "text"
    formats: list[str] = []
    default: str | None = None


class Detect(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    required: list[str]


class FormatSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A whole format file: its name, how to recognise it and its fields in computing order."""

    name: str
    detect: Detect
    fields: dict[str, FieldSpec]
    description: str = ""
    origin: str = ""


def column_key(name: str) -> str:
    """Header names match case-insensitively and without surrounding spaces or a BOM."""
    return name.strip().lstrip("\ufeff").strip().casefold()


@cache
def builtin_formats() -> dict[str, FormatSpec]:
    """The formats shipped in ``ingest/formats``, by name."""
    folder = resources.files("ingest") / "formats"
    files = sorted(item for item in folder.iterdir() if item.name.endswith(".toml"))
    specs = [_parse(item.read_bytes(), f"ingest/formats/{item.name}") for item in files]
    return {spec.name: spec for spec in specs}


def load_format(name_or_path: str | Path) -> FormatSpec:
    """A built-in format by name, or a user's format file by path (anything ending in .toml)."""
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        return _load_path(Path(text))

    formats = builtin_formats()
    if text not in formats:
        known = ", ".join(sorted(formats))
        raise FormatError(f"unknown format {text!r}: the built-in formats are {known}, "
                          "or pass the path of a .toml format file")
    return formats[text]


def detect_format(columns: list[str], where: str) -> FormatSpec:
    """The built-in format whose required columns ``columns`` has; the most specific one wins."""
    present = {column_key(name) for name in columns}
    formats = builtin_formats().values()
    matches = [spec for spec in formats if _required_keys(spec) <= present]
    if not matches:
        needs = "; ".join(f"{s.name} needs {', '.join(s.detect.required)}" for s in formats)
        shown = ", ".join(columns[:12]) + (", ..." if len(columns) > 12 else "")
        raise IngestError(f"{where}: cannot tell the format from its columns ({shown}): {needs}."
                          " Pass the format by name or as a .toml path")

    best = max(len(spec.detect.required) for spec in matches)
    return next(spec for spec in matches if len(spec.detect.required) == best)


def check_columns(spec: FormatSpec, columns: list[str], where: str) -> None:
    """Fail when a file lacks a column that its format needs to recognise it."""
    present = {column_key(name) for name in columns}
    missing = [name for name in spec.detect.required if column_key(name) not in present]
    if missing:
        raise IngestError(f"{where}: format {spec.name} needs the columns {', '.join(missing)},"
                          f" which the file does not have")


def _required_keys(spec: FormatSpec) -> set[str]:
    return {column_key(name) for name in spec.detect.required}


def _load_path(path: Path) -> FormatSpec:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise FormatError(f"cannot read format file {path}: {error.strerror}") from None
    return _parse(data, str(path))


def _parse(data: bytes, origin: str) -> FormatSpec:
    try:
        raw = tomllib.loads(data.decode("utf-8"))
        spec = msgspec.convert({**raw, "origin": origin}, FormatSpec)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise FormatError(f"format file {origin} is not valid TOML: {error}") from None
    except msgspec.ValidationError as error:
        raise FormatError(f"format file {origin}: {error}") from None

    _check(spec)
    logger.debug("read format %s from %s", spec.name, origin)
    return spec


def _check(spec: FormatSpec) -> None:
    missing = [name for name in REQUIRED_FIELDS if name not in spec.fields]
    if missing:
        _fail(spec, f"has no mapping for {', '.join(missing)}")

    seen: list[str] = []
    for name, field in spec.fields.items():
        if name not in ALERT_FIELDS:
            _fail(spec, f"maps unknown field {name!r}; the fields are {', '.join(ALERT_FIELDS)}")
        _check_field(spec, name, field, seen)
        seen.append(name)


def _check_field(spec: FormatSpec, name: str, field: FieldSpec, above: list[str]) -> None:
    sources = [key for key in _SOURCES if getattr(field, key) is not None]
    if len(sources) > 1 or (not sources and field.default is None):
        _fail(spec, f"field {name} needs exactly one of {', '.join(_SOURCES)} (or only a default);"
                    f" it has {', '.join(sources) or 'none'}")

    _check_parser(spec, name, field.parser, field.formats)
    if field.field is not None and field.field not in above:
        _fail(spec, f"field {name} copies {field.field!r}, which is not a field above it")
    for rule in field.rules or []:
        for condition in [*rule.any, *rule.all]:
            _check_condition(spec, name, condition, above)


def _check_condition(spec: FormatSpec, name: str, condition: Condition, above: list[str]) -> None:
    targets = [key for key in ("column", "field") if getattr(condition, key) is not None]
    tests = [key for key in _TESTS if getattr(condition, key) is not None]
    if len(targets) != 1 or len(tests) != 1:
        _fail(spec, f"a rule of field {name} needs one of column/field and one of"
                    f" {', '.join(_TESTS)}; it has {', '.join(targets + tests) or 'none'}")

    if condition.field is not None and condition.field not in above:
        _fail(spec, f"a rule of field {name} tests {condition.field!r}, not a field above it")
    _check_parser(spec, name, condition.parser, condition.formats)
    if isinstance(condition.equals, bool) and condition.column and condition.parser != "yes_no":
        # Text never equals true or false, so the rule would silently never match.
        _fail(spec, f"a rule of field {name} tests column {condition.column!r} for"
                    f" {str(condition.equals).lower()}, which needs parser = \"yes_no\"")
    if condition.at_least is not None:
        _decimal_setting(spec, name, condition.at_least)


def _check_parser(spec: FormatSpec, name: str, parser: str, formats: list[str]) -> None:
    try:
        make_parser(parser, tuple(formats))
    except ValueError as error:
        _fail(spec, f"field {name}: {error}")


def _decimal_setting(spec: FormatSpec, name: str, value: int | float | str) -> Decimal:
    try:
        return Decimal(str(value))
    except ArithmeticError:
        _fail(spec, f"field {name}: at_least {value!r} is not a number")
        raise


def _fail(spec: FormatSpec, problem: str) -> None:
    raise FormatError(f"format file {spec.origin} ({spec.name}) {problem}")
