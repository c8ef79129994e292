"""JSON from untrusted peers: size-capped before parsing, nesting-limited, then shape-checked.

Standard library only (the board agent imports it). Used for every MQTT message the agent and the
orchestrator receive (docs/security.md#robust-message-handling): Python's parser recurses per
nesting level, so a deeply nested document raises RecursionError instead of a ValueError, and a
large one costs memory; both are refused here before `json.loads` sees them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from core.errors import FinnsplitError

MAX_DEPTH = 16  # the deepest legitimate message (a stats line) nests 3 levels
_SPECIAL = re.compile(rb'[\[\]{}"\\]')
_OPEN, _CLOSE, _QUOTE, _BACKSLASH = frozenset(b"[{"), frozenset(b"]}"), ord('"'), ord("\\")


class MessageError(FinnsplitError):
    """A message that is too large, too deeply nested, not JSON, or not of the expected shape."""


def nesting_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in `data` (brackets inside strings do not count); linear time."""
    depth = deepest = 0
    in_string = False
    escaped_at = -1
    for match in _SPECIAL.finditer(data):
        at = match.start()
        if at == escaped_at:
            continue
        char = data[at]
        if in_string:
            if char == _BACKSLASH:
                escaped_at = at + 1
            elif char == _QUOTE:
                in_string = False
        elif char == _QUOTE:
            in_string = True
        elif char in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        elif char in _CLOSE:
            depth -= 1
    return deepest


def loads(payload: object, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `payload` (bytes or str) as JSON, refusing (MessageError) what is too large or too deep."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8", errors="surrogateescape")
    if not isinstance(payload, bytes | bytearray):
        raise MessageError(f"payload of type {type(payload).__name__}, not bytes")
    if len(payload) > max_bytes:
        raise MessageError(f"message of {len(payload)} bytes exceeds the limit of {max_bytes}")
    depth = nesting_depth(bytes(payload))
    if depth > max_depth:
        raise MessageError(f"message nests {depth} levels deep (limit {max_depth})")
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MessageError(f"not JSON: {str(exc)[:120]}") from None


def loads_object(payload: object, max_bytes: int, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """`loads` for a message that must be a JSON object."""
    data = loads(payload, max_bytes, max_depth)
    if not isinstance(data, dict):
        raise MessageError(f"a JSON {type(data).__name__}, not an object")
    return data


def check_fields(data: dict[str, Any], types: dict[str, Any], where: str) -> None:
    """Raise MessageError unless each key present in `types` has a value of its type (None allowed if listed).

    `types` maps a key to a type or tuple of types; a key prefixed with "!" is required.
    """
    for spec, expected in types.items():
        key = spec.lstrip("!")
        if key not in data:
            if spec.startswith("!"):
                raise MessageError(f"{where}: missing field {key!r}")
            continue
        value = data[key]
        allowed = expected if isinstance(expected, tuple) else (expected,)
        if isinstance(value, bool) and bool not in allowed:  # bool is an int in Python, not in JSON
            ok = False
        else:
            ok = isinstance(value, tuple(t for t in allowed if t is not None)) or (value is None and None in allowed)
        if not ok:
            names = "/".join("null" if t is None else t.__name__ for t in allowed)
            raise MessageError(f"{where}: field {key!r} must be {names}, got {json.dumps(value)[:60]}")
