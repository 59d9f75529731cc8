"""The small CEL subset the simulated ngrok API accepts in `filter=`: a real tokenizer and parser.

Why not regexes: a filter is user input, and a quoted literal such as `"x\\" || obj.id != \\""`
must stay one literal. Tokenizing first makes injection attempts inert by construction.

Grammar (anything else is rejected with `CelError`, which the API answers with a 400
`invalid_cel_expression`):

    expr       := and_expr ("||" and_expr)*
    and_expr   := term ("&&" term)*
    term       := "(" expr ")" | comparison
    comparison := field ("==" | "!=" | "<" | ">") literal
                | field "in" "[" [literal ("," literal)*] "]"
    field      := "obj" "." name ["." name]         (only the names the resource allows)
    literal    := STRING | "timestamp" "(" STRING ")"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

SESSION_FIELDS = (
    "id",
    "metadata",
    "agent_version",
    "ip",
    "os",
    "region",
    "started_at",
    "credential.id",
)
ENDPOINT_FIELDS = (
    "id",
    "created_at",
    "description",
    "metadata",
    "principal.id",
    "type",
    "url",
    "scheme",
    "region",
    "name",
)
TIME_FIELDS = frozenset({"started_at", "created_at"})
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
_SYMBOLS = ("==", "!=", "&&", "||", "<", ">", "(", ")", "[", "]", ",", ".")


class CelError(ValueError):
    """The expression is outside the supported subset; the message says where."""


@dataclass(frozen=True)
class Token:
    kind: str  # "name", "string", "symbol", "end"
    text: str
    pos: int


def tokenize(source: str) -> list[Token]:
    """Splits an expression into names, string literals and operator symbols."""
    tokens: list[Token] = []
    i = 0
    while i < len(source):
        ch = source[i]
        if ch.isspace():
            i += 1
        elif ch == '"':
            text, i = _read_string(source, i)
            tokens.append(Token("string", text, i))
        elif ch.isalpha() or ch == "_":
            start = i
            while i < len(source) and (source[i].isalnum() or source[i] == "_"):
                i += 1
            tokens.append(Token("name", source[start:i], start))
        else:
            symbol = next((s for s in _SYMBOLS if source.startswith(s, i)), None)
            if symbol is None:
                raise CelError(f"unexpected character {ch!r} at offset {i}")
            tokens.append(Token("symbol", symbol, i))
            i += len(symbol)
    tokens.append(Token("end", "", len(source)))
    return tokens


def _read_string(source: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    while i < len(source):
        ch = source[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\":
            escaped = source[i + 1 : i + 2]
            if escaped not in _ESCAPES:
                raise CelError(f"unsupported escape sequence at offset {i}")
            out.append(_ESCAPES[escaped])
            i += 2
        else:
            out.append(ch)
            i += 1
    raise CelError(f"unterminated string literal starting at offset {start}")


class _Parser:
    """Recursive descent over the token list, building closures over a resource dict."""

    def __init__(self, tokens: list[Token], fields: tuple[str, ...]) -> None:
        self.tokens = tokens
        self.fields = fields
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self, kind: str, text: str | None = None) -> Token:
        token = self.peek()
        if token.kind != kind or (text is not None and token.text != text):
            wanted = text or kind
            found = token.text or "end of expression"
            raise CelError(f"expected {wanted!r} at offset {token.pos}, found {found!r}")
        self.i += 1
        return token

    def accept(self, text: str) -> bool:
        token = self.peek()
        if token.kind in ("symbol", "name") and token.text == text:
            self.i += 1
            return True
        return False

    def parse(self) -> Predicate:
        predicate = self.or_expr()
        self.take("end")
        return predicate

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.accept("||"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda obj: any(p(obj) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.term()]
        while self.accept("&&"):
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda obj: all(p(obj) for p in parts))

    def term(self) -> Predicate:
        if self.accept("("):
            inner = self.or_expr()
            self.take("symbol", ")")
            return inner
        return self.comparison()

    def field(self) -> str:
        self.take("name", "obj")
        self.take("symbol", ".")
        path = self.take("name").text
        if self.accept("."):
            path += "." + self.take("name").text
        if path not in self.fields:
            raise CelError(f"field obj.{path} cannot be filtered on")
        return path

    def literal(self, field: str) -> str | datetime:
        if self.accept("timestamp"):
            self.take("symbol", "(")
            token = self.take("string")
            self.take("symbol", ")")
            if field not in TIME_FIELDS:
                raise CelError(f"obj.{field} cannot be compared with a timestamp")
            return _parse_timestamp(token.text, token.pos)
        return self.take("string").text

    def comparison(self) -> Predicate:
        field = self.field()
        if self.accept("in"):
            self.take("symbol", "[")
            values: list[str | datetime] = []
            if not self.accept("]"):
                values.append(self.literal(field))
                while self.accept(","):
                    values.append(self.literal(field))
                self.take("symbol", "]")
            return lambda obj: any(_compare(obj, field, "==", v) for v in values)
        op = self.peek()
        if op.kind != "symbol" or op.text not in ("==", "!=", "<", ">"):
            raise CelError(f"expected a comparison operator at offset {op.pos}")
        self.i += 1
        value = self.literal(field)
        return lambda obj: _compare(obj, field, op.text, value)


def _parse_timestamp(text: str, pos: int) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CelError(f"invalid RFC 3339 timestamp at offset {pos}") from None
    if parsed.tzinfo is None:
        raise CelError(f"timestamp without a time zone at offset {pos}")
    return parsed


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        current = current.get(part) if isinstance(current, Mapping) else None
    return current if isinstance(current, str) else ""


def _compare(obj: Mapping[str, Any], field: str, op: str, value: str | datetime) -> bool:
    raw: str = _field_value(obj, field)
    if isinstance(value, datetime):
        try:
            when = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            return False
        return _ordered(when if when.tzinfo else when.replace(tzinfo=UTC), op, value)
    return _ordered(raw, op, value)


def _ordered(actual: Any, op: str, value: Any) -> bool:
    """Strings compare with strings and times with times (the parser only pairs like kinds)."""
    if op == "==":
        return bool(actual == value)
    if op == "!=":
        return bool(actual != value)
    if op == "<":
        return bool(actual < value)
    return bool(actual > value)


def compile_filter(source: str, fields: tuple[str, ...] = SESSION_FIELDS) -> Predicate:
    """Parses `source` into a predicate over one resource dict; raises CelError when invalid."""
    return _Parser(tokenize(source), fields).parse()
