"""Builds the CEL `filter` for `GET /tunnel_sessions` from plain values.

Values come from Slack users, so they are only ever placed inside string literals made by
`cel_string`, which escapes everything that could end the literal: no value can add syntax.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

# CEL field for each SessionFilter field.
FIELD_PATHS = {
    "regions": "obj.region",
    "oses": "obj.os",
    "agent_versions": "obj.agent_version",
    "ips": "obj.ip",
}

_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        raise ValueError("text contains a lone surrogate, which CEL strings cannot hold")
    if code < 0x20 or 0x7F <= code < 0xA0 or code in (0x2028, 0x2029):
        return f"\\u{code:04x}"
    return char


def cel_string(value: str) -> str:
    """A double-quoted CEL string literal whose value is exactly `value`."""
    return '"' + "".join(_escape_char(char) for char in value) + '"'


def _one_of(path: str, values: tuple[str, ...]) -> str:
    if len(values) == 1:
        return f"{path} == {cel_string(values[0])}"
    return f"{path} in [{', '.join(cel_string(v) for v in values)}]"


def _as_tuple(values: Iterable[str] | str) -> tuple[str, ...]:
    """A lone string is one value, not its characters; duplicates go, order stays."""
    items = (values,) if isinstance(values, str) else tuple(values)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"filter values must be strings, not {type(item).__name__}")
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class SessionFilter:
    """Which sessions to list: any of the values within a field, all of the fields."""

    regions: tuple[str, ...] = ()
    oses: tuple[str, ...] = ()
    agent_versions: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field in fields(self):
            if field.name in FIELD_PATHS:
                object.__setattr__(self, field.name, _as_tuple(getattr(self, field.name)))

    def to_cel(self) -> str | None:
        """The CEL expression, or None when the filter matches everything."""
        clauses = [
            _one_of(path, getattr(self, name))
            for name, path in FIELD_PATHS.items()
            if getattr(self, name)
        ]
        return " && ".join(clauses) or None
