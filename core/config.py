"""One typed config mechanism for every YAML file finnsplit reads (docs/config.md).

A file's schema is a tree of frozen dataclasses: field types say what a value must be (`str`, `int`,
`float`, `bool`, `Literal[...]` choices, `tuple[X, ...]` lists, nested dataclasses, `X | None`), and
`Annotated[...]` adds the checks a type cannot say (`Range`, `Match`, `NonEmpty`). `from_data` builds
the instance, refusing unknown keys at every level; cross-field checks live in the dataclasses'
`__post_init__` and raise through `check`. Every problem of a file is reported at once, each as
`<file>: <field path>: expected <what>, found <what>` (core.errors.ConfigError).

Standard library only: a board has PyYAML, so `read_yaml` imports it lazily (or takes a module).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from core.errors import ConfigError, Problem

T = TypeVar("T")
_FAILED = object()  # a value that did not convert (its problems are recorded)


@dataclass(frozen=True)
class Range:
    """Bounds of a number: `gt`/`ge` below, `lt`/`le` above (None: unbounded)."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def holds(self, value: float) -> bool:
        """Whether `value` is within the bounds."""
        return ((self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
                and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le))

    def describe(self) -> str:
        """The bounds in words, e.g. "in 1..65535", "> 0", "in (0, 1]"."""
        low, high = self.gt if self.gt is not None else self.ge, self.lt if self.lt is not None else self.le
        if low is not None and high is not None:
            if self.ge is not None and self.le is not None:
                return f"in {_num(low)}..{_num(high)}"
            opening, closing = "(" if self.gt is not None else "[", ")" if self.lt is not None else "]"
            return f"in {opening}{_num(low)}, {_num(high)}{closing}"
        if low is not None:
            return f"{'>' if self.gt is not None else '>='} {_num(low)}"
        return f"{'<' if self.lt is not None else '<='} {_num(high)}" if high is not None else ""


@dataclass(frozen=True)
class Match:
    """A string matching `pattern` in full; `what` names it in errors (default: "a string matching ...")."""

    pattern: str
    what: str = ""


@dataclass(frozen=True)
class NonEmpty:
    """A string with more than blanks, or a list with at least one item."""


Port = Annotated[int, Range(ge=1, le=65535)]
Name = Annotated[str, Match(r"[a-z0-9-]+", "a name matching [a-z0-9-]+")]
Text = Annotated[str, NonEmpty()]
AbsolutePath = Annotated[str, Match(r"/.*", "an absolute path")]


def check(ok: bool, field: str, expected: str, found: object) -> None:
    """In a schema's `__post_init__`: raise ConfigError for `field` (relative to the dataclass) unless `ok`."""
    if not ok:
        raise ConfigError("", [Problem(field, expected, found if isinstance(found, str) else show(found))])


def read_yaml(path: str | Path, yaml_module: Any = None, what: str = "a YAML file") -> Any:
    """The parsed YAML of `path`; ConfigError (one line) if it cannot be read or is not YAML."""
    if yaml_module is None:
        import yaml as yaml_module
    try:
        with Path(path).open() as stream:
            return yaml_module.safe_load(stream)
    except OSError as exc:
        raise ConfigError(str(path), [Problem("", f"{what} that can be read", exc.strerror or str(exc))]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [Problem("", "a UTF-8 text file", str(exc))]) from None
    except yaml_module.YAMLError as exc:
        raise ConfigError(str(path), [Problem("", "valid YAML", " ".join(str(exc).split()))]) from None


def load_yaml(cls: type[T], path: str | Path, yaml_module: Any = None, error: type[ConfigError] = ConfigError,
              what: str = "a YAML file") -> T:
    """Read `path` and build its schema `cls` (`error`: the ConfigError subclass raised)."""
    try:
        data = read_yaml(path, yaml_module, what)
    except ConfigError as exc:
        raise error(exc.source, exc.problems) from None
    return from_data(cls, data, str(path), error)


def from_data(cls: type[T], data: object, source: str, error: type[ConfigError] = ConfigError) -> T:
    """Build the frozen dataclass `cls` from parsed YAML/JSON, reporting every problem at once."""
    problems: list[Problem] = []
    value = _section(cls, data, "", problems)
    if problems:
        raise error(source, problems)
    return value


def fields_from_data(cls: type, data: object, source: str, types_: Mapping[str, Any] | None = None,
                     error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    """The fields of `cls` present in `data`, each checked (a file that overrides some defaults);
    `types_` replaces the declared type of some fields. Unknown keys are refused; nothing is required."""
    problems: list[Problem] = []
    hints = {**_hints(cls), **(types_ or {})}
    values: dict[str, Any] = {}
    if _is_mapping(data, cls, "", problems):
        _refuse_unknown(data, [f.name for f in dataclasses.fields(cls)], "", problems)
        for name, hint in hints.items():
            if name in data:
                values[name] = _convert(hint, data[name], name, problems)
    if problems:
        raise error(source, problems)
    return values


def to_data(instance: object) -> Any:
    """A schema instance as plain data (mappings, lists, scalars): what `from_data` reads back."""
    if dataclasses.is_dataclass(instance) and not isinstance(instance, type):
        return {f.name: to_data(getattr(instance, f.name)) for f in dataclasses.fields(instance)}
    if isinstance(instance, tuple | list):
        return [to_data(item) for item in instance]
    return instance


def show(value: object) -> str:
    """A found value as errors print it: YAML spelling for scalars, the kind for collections."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}" if value else "an empty list"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe(hint: Any) -> str:
    """What a value of type `hint` is, in words (the "expected" of an error)."""
    base, marks = _unwrap(hint)
    if _none_allowed(base):
        rest = [arg for arg in base.__args__ if arg is not type(None)]
        return " or ".join(describe(arg) for arg in rest) + " or null"
    if isinstance(base, types.UnionType) or typing.get_origin(base) is typing.Union:
        return " or ".join(describe(arg) for arg in base.__args__)
    for mark in marks:
        if isinstance(mark, Match):
            return mark.what or f"a string matching {mark.pattern}"
    ranges = [m.describe() for m in marks if isinstance(m, Range)]
    words = _BASIC_WORDS.get(base)
    if words is not None:
        if base is str and any(isinstance(m, NonEmpty) for m in marks):
            words = "a non-empty string"
        return f"{words} {ranges[0]}" if ranges else words
    if typing.get_origin(base) is Literal:
        return "one of " + ", ".join(str(arg) for arg in base.__args__)
    if typing.get_origin(base) is tuple:
        prefix = "a non-empty list" if any(isinstance(m, NonEmpty) for m in marks) else "a list"
        return f"{prefix} of {_plural(describe(base.__args__[0]))}"
    if dataclasses.is_dataclass(base):
        return f"a mapping ({', '.join(f.name for f in dataclasses.fields(base))})"
    return getattr(base, "__name__", str(base))


_BASIC_WORDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false", object: "a value"}


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _plural(words: str) -> str:
    """"a mapping (x, y)" -> "mappings (x, y)", "an integer in 1..9" -> "integers in 1..9"."""
    bare = re.sub(r"^an? ", "", words)
    if bare == words:
        return f"values that are {words}"
    first, _, rest = bare.partition(" ")
    return f"{first}s {rest}".rstrip()


def _join(prefix: str, name: str) -> str:
    if not prefix:
        return name
    return f"{prefix}{name}" if not name or name.startswith("[") else f"{prefix}.{name}"


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _unwrap(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    """(the type, its Annotated marks)."""
    if typing.get_origin(hint) is Annotated:
        return hint.__origin__, hint.__metadata__
    return hint, ()


def _none_allowed(hint: Any) -> bool:
    is_union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    return is_union and type(None) in hint.__args__


def _is_mapping(data: object, cls: type, where: str, problems: list[Problem]) -> bool:
    if isinstance(data, Mapping):
        return True
    problems.append(Problem(where, describe(cls), show(data)))
    return False


def _refuse_unknown(data: Mapping, known: list[str], where: str, problems: list[Problem]) -> None:
    for key in data:
        if key in known:
            continue
        near = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        problems.append(Problem(_join(where, str(key)), f"a field of {where or 'the top level'} ({', '.join(known)})",
                                f"unknown field {str(key)!r}{hint}"))


def _section(cls: type, data: object, where: str, problems: list[Problem]) -> Any:
    """One dataclass from a mapping; records problems and returns _FAILED on any."""
    if not _is_mapping(data, cls, where, problems):
        return _FAILED
    assert isinstance(data, Mapping)
    fields = dataclasses.fields(cls)
    _refuse_unknown(data, [f.name for f in fields], where, problems)
    hints = _hints(cls)
    before = len(problems)
    values: dict[str, Any] = {}
    for f in fields:
        key = _join(where, f.name)
        if f.name in data:
            values[f.name] = _convert(hints[f.name], data[f.name], key, problems)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(Problem(key, describe(hints[f.name]), "nothing (the field is required)"))
    if len(problems) > before:
        return _FAILED
    try:
        return cls(**values)
    except ConfigError as exc:  # a cross-field check of __post_init__
        problems.extend(Problem(_join(where, p.field), p.expected, p.found) for p in exc.problems)
        return _FAILED


def _convert(hint: Any, value: object, key: str, problems: list[Problem]) -> Any:
    base, marks = _unwrap(hint)
    if _none_allowed(base) or isinstance(base, types.UnionType) or typing.get_origin(base) is typing.Union:
        return _union(base, value, key, problems)
    if dataclasses.is_dataclass(base):
        return _section(base, value, key, problems)
    if typing.get_origin(base) is tuple:
        return _list(hint, base.__args__[0], marks, value, key, problems)
    if typing.get_origin(base) is Literal:
        if value in base.__args__ and not isinstance(value, bool):
            return value
        near = difflib.get_close_matches(str(value), [str(a) for a in base.__args__], n=1, cutoff=0.6)
        problems.append(Problem(key, describe(hint), show(value) + (f" (did you mean {near[0]!r}?)" if near else "")))
        return _FAILED
    converted = _scalar(base, value)
    if converted is _FAILED or not _marks_hold(marks, converted):
        problems.append(Problem(key, describe(hint), show(value)))
        return _FAILED
    return converted


def _scalar(base: Any, value: object) -> Any:
    if base is object:
        return value
    if base is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if base is int and isinstance(value, bool):
        return _FAILED
    return value if isinstance(base, type) and isinstance(value, base) else _FAILED


def _marks_hold(marks: tuple[Any, ...], value: Any) -> bool:
    for mark in marks:
        if isinstance(mark, Range) and not mark.holds(value):
            return False
        if isinstance(mark, Match) and not re.fullmatch(mark.pattern, value):
            return False
        if isinstance(mark, NonEmpty) and not (value.strip() if isinstance(value, str) else value):
            return False
    return True


def _union(base: Any, value: object, key: str, problems: list[Problem]) -> Any:
    if value is None and type(None) in base.__args__:
        return None
    arms = [arg for arg in base.__args__ if arg is not type(None)]
    for arm in arms:
        trial: list[Problem] = []
        converted = _convert(arm, value, key, trial)
        if not trial:
            return converted
        if any(p.field != key for p in trial):  # a section or list of this arm: its own problems
            problems.extend(trial)
            return _FAILED
        found = trial[0].found
    problems.append(Problem(key, describe(base), found))
    return _FAILED


def _list(hint: Any, item: Any, marks: tuple[Any, ...], value: object, key: str, problems: list[Problem]) -> Any:
    if not isinstance(value, list | tuple) or (not value and any(isinstance(m, NonEmpty) for m in marks)):
        problems.append(Problem(key, describe(hint), show(value)))
        return _FAILED
    before = len(problems)
    items = tuple(_convert(item, entry, f"{key}[{i}]", problems) for i, entry in enumerate(value))
    return _FAILED if len(problems) > before else items
