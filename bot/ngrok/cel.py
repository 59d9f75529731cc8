"""Builds the CEL `filter` for `GET /tunnel_sessions` from plain values.

Values come from Slack users, so they are only ever placed inside string literals made by
`cel_string`, which escapes everything that could end the literal: no value can add syntax.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime

# CEL field for each SessionFilter field. `obj.credential.id` is the documented shape of the Ref,
# but the live API's syntax for credential is unverified (reference §5).
FIELD_PATHS = {
    "regions": "obj.region",
    "oses": "obj.os",
    "agent_versions": "obj.agent_version",
    "ips": "obj.ip",
    "metadata": "obj.metadata",
    "credential_ids": "obj.credential.id",
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


def cel_timestamp(moment: datetime) -> str:
    """`timestamp("…Z")` in UTC; a naive datetime is taken to be UTC already."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    text = aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return f"timestamp({cel_string(text)})"


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
    metadata: tuple[str, ...] = ()
    credential_ids: tuple[str, ...] = ()
    started_before: datetime | None = None
    started_after: datetime | None = None

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
        if self.started_before is not None:
            clauses.append(f"obj.started_at < {cel_timestamp(self.started_before)}")
        if self.started_after is not None:
            clauses.append(f"obj.started_at > {cel_timestamp(self.started_after)}")
        return " && ".join(clauses) or None
