"""The one grammar for `/ngrok <text>` and `@ngrok-ops <text>`, and the help text built from it.

Pure: text in, a `Command` out, or a `ParseError` whose message is one sentence naming the
bad token and saying what to type instead. Exact filters go to the API as CEL; what CEL
cannot do (substrings, version ordering) is kept in `SessionQuery` and applied while paging.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal, cast

from bot.ngrok.cel import SessionFilter
from bot.ngrok.hosts import HOST_NAME_RE
from bot.ngrok.models import SESSION_ID_RE, Action, TunnelSession, as_action
from bot.slack.blocks import parse_user_ref

EXAMPLE_ID = "ts_334AeguNPwngGnMIrd3SZLE7pdZ"
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
DEFAULT_AUDIT = 10
MAX_AUDIT = 50

VERBS = ("help", "sessions", "session", "restart", "stop", "update", "jobs", "audit")
ALIASES = {
    "ls": "sessions",
    "list": "sessions",
    "show": "session",
    "get": "session",
    "details": "session",
    "?": "help",
}
USAGE = {
    "help": "help",
    "sessions": "sessions [region=us,eu] [os=linux] [version>=3.20] [ip=10.0.0.1] "
    "[meta=text] [words…] [limit=20]",
    "session": "session <session-id | host>",
    "restart": "restart <session-id | host | filters…> [canary=1] [batch=N] [max_failures=N]",
    "stop": "stop <session-id | host | filters…> [canary=1] [batch=N] [max_failures=N]",
    "update": "update <session-id | host | filters…> [canary=1] [batch=N] [max_failures=N]",
    "jobs": "jobs",
    "audit": "audit [n] [session-id | @user] [csv]",
}
_HELP = {
    "help": "Show this list. Example: `help`",
    "sessions": "List online agents, newest first, up to 100 per page in a table. Several "
    "values mean any of them; version compares as numbers; free words search metadata, id "
    "and IP. Pick an agent in the menu for its details and actions; *Export CSV* uploads the "
    "whole matching list, *Post to channel* shows the page to everyone. Aliases `ls`, `list`. "
    "Example: `sessions region=eu os=linux version<3.20 prod`",
    "session": "Show one agent, by session id or host name, with its metadata, endpoints and "
    "the actions you may ask for here; *Post to channel* shows it to everyone. Aliases "
    "`show`, `get`, `details`. Example: `session edge-12`",
    "restart": "Ask to restart an agent (by id or host name) or, with the filters of `sessions` "
    "(or `all`), every matching agent as a rolling run: canary first, then batches, with a "
    "preview, one approval and progress you can pause (`canary=`, `batch=`, `max_failures=`, "
    "or the preview's menus). Example: `restart region=eu os=linux canary=2 batch=20`",
    "stop": "Ask to stop an agent, or every agent matching filters (a rolling run). "
    f"Example: `stop {EXAMPLE_ID}`",
    "update": "Ask to update an agent, or every matching agent older than the newest version "
    "seen (a rolling run); the bot restarts each after the update and checks its version. "
    "Example: `update os=linux version<3.20 region=eu`",
    "jobs": "List fleet runs: running ones first, then recent ones, with their counts and a "
    "*Progress* button that opens each run's progress message. Example: `jobs`",
    "audit": f"Show recent actions, newest first (n up to {MAX_AUDIT}, default {DEFAULT_AUDIT}), "
    "one sentence each; `csv` uploads them as a CSV file instead. Example: `audit 20 @alice`",
}
_FILTER_KEYS = {
    "region": "region",
    "os": "os",
    "version": "version",
    "agent_version": "version",
    "ip": "ip",
    "meta": "meta",
    "metadata": "meta",
    "limit": "limit",
}
_FILTER_HINT = "use region=, os=, version=, version<, version>=, ip=, meta= or limit="

_SPACES = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")
_QUOTES = str.maketrans(
    dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"')
    | dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'")
)
_LINK = re.compile(r"<(?:https?://|mailto:)[^|>]*\|([^>]*)>|<((?:https?://|mailto:)[^|>]*)>")
_FILTER_TOKEN = re.compile(r"([A-Za-z_]+)\s*(!=|<=|>=|=<|=>|<|>|=)(.*)", re.DOTALL)
_VERSION = re.compile(r"v?(\d+(?:\.\d+)*)([-+][0-9A-Za-z.+-]*)?")
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,30}")
_OS = re.compile(r"[a-z0-9_]{1,30}")
_OTHER_ID = re.compile(r"(?i)[a-z]{2,4}_\S*")  # ts_…, tn_…, ep_…: an id, never a host name


BoundOp = Literal["<", "<=", ">", ">="]


class ParseError(Exception):
    """One sentence saying what was wrong and what to type instead, plus the usage line."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


@dataclass(frozen=True)
class VersionBound:
    op: BoundOp
    version: str

    def holds_for(self, version: str) -> bool:
        try:
            order = compare_versions(version, self.version)
        except ValueError:
            return False
        return {"<": order < 0, "<=": order <= 0, ">": order > 0, ">=": order >= 0}[self.op]


@dataclass(frozen=True)
class SessionQuery:
    api_filter: SessionFilter = field(default_factory=SessionFilter)
    version_bounds: tuple[VersionBound, ...] = ()
    meta_contains: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    limit: int = DEFAULT_LIMIT

    @property
    def filters_locally(self) -> bool:
        """Whether `matches_locally` can reject anything; without local terms the API's
        answer is the result, and a scan skips the pass over every session."""
        return bool(self.version_bounds or self.meta_contains or self.words)

    def matches_locally(self, session: TunnelSession) -> bool:
        """The part CEL cannot do: version bounds, metadata substrings, free words."""
        metadata = session.metadata.lower()
        haystacks = (metadata, session.id.lower(), session.ip.lower())
        return (
            all(b.holds_for(session.agent_version) for b in self.version_bounds)
            and all(m in metadata for m in self.meta_contains)
            and all(any(w in h for h in haystacks) for w in self.words)
        )

    def describe(self) -> str:
        """The filters as text that parses back to this query, e.g. for headers and paging."""
        f = self.api_filter
        parts = [f"{key}={','.join(vals)}" for key, vals in _exact_filters(f) if vals]
        parts += [f"version{b.op}{b.version}" for b in self.version_bounds]
        parts += [f"meta={_quote(m)}" for m in self.meta_contains]
        parts += [_quote(w) for w in self.words]
        if self.limit != DEFAULT_LIMIT:
            parts.append(f"limit={self.limit}")
        return " ".join(parts)


def _exact_filters(f: SessionFilter) -> list[tuple[str, tuple[str, ...]]]:
    return [("region", f.regions), ("os", f.oses), ("version", f.agent_versions), ("ip", f.ips)]


def _quote(text: str) -> str:
    """A term as the tokeniser reads it back, for headers and the query of Page buttons."""
    if text and not re.search(r"[\s\"'=<>]", text) and text not in _FILTER_KEYS:
        return text
    quote = "'" if "'" not in text else '"'
    return quote + text.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class ListSessions:
    query: SessionQuery


@dataclass(frozen=True)
class ShowSession:
    session_id: str


@dataclass(frozen=True)
class RequestAction:
    action: Action
    session_id: str


@dataclass(frozen=True)
class RunOptions:
    """How a fleet run rolls: canary size, batch size (None: chosen from the count), how many
    failures it tolerates (None: it stops after the first batch with a failure), and the
    count typed to confirm a run over CONFIRM_OVER agents."""

    canary: int = 1
    batch: int | None = None
    max_failures: int | None = None
    confirm: int | None = None


@dataclass(frozen=True)
class FleetAction:
    """`restart|stop|update <filters>`: every matching agent, as one rolling run."""

    action: Action
    query: SessionQuery
    options: RunOptions = RunOptions()


@dataclass(frozen=True)
class ShowRuns:
    pass


@dataclass(frozen=True)
class ShowAudit:
    limit: int = DEFAULT_AUDIT
    session_id: str | None = None
    user_id: str | None = None
    csv: bool = False


Command = Help | ListSessions | ShowSession | RequestAction | FleetAction | ShowRuns | ShowAudit
CONFIRM_OVER = 1000
MAX_RUN_OPTION = 100_000
RUN_OPTIONS = ("canary", "batch", "max_failures", "confirm")


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1, comparing dotted numbers (`3.9.0` < `3.10.0`, `3.20` == `3.20.0`); a
    suffix such as `-development` sorts just below the same numbers without one.
    ValueError when either side does not start with a number."""
    (nums_a, tail_a), (nums_b, tail_b) = _version_key(a), _version_key(b)
    width = max(len(nums_a), len(nums_b))
    pad_a = nums_a + (0,) * (width - len(nums_a))
    pad_b = nums_b + (0,) * (width - len(nums_b))
    if pad_a != pad_b:
        return -1 if pad_a < pad_b else 1
    if bool(tail_a) != bool(tail_b):
        return -1 if tail_a else 1
    return (tail_a > tail_b) - (tail_a < tail_b)


def _version_key(text: str) -> tuple[tuple[int, ...], str]:
    match = _VERSION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a version number: {text!r}")
    return tuple(int(p) for p in match.group(1).split(".")), (match.group(2) or "").lower()


def strip_mention(text: str, bot_user_id: str | None) -> str:
    """The command after the bot's mention (`<@UBOT1> stop ts_…` -> `stop ts_…`); when
    nothing follows the mention, the text before it. Without a bot id, a leading mention
    of anyone is dropped."""
    text = _normalise_spaces(text)
    who = re.escape(bot_user_id) if bot_user_id else r"[UW][A-Z0-9]+"
    mention = re.compile(rf"<@{who}(?:\|[^>]*)?>")
    match = mention.search(text) if bot_user_id else mention.match(text.lstrip())
    if not match:
        return text.strip()
    source = text if bot_user_id else text.lstrip()
    after, before = source[match.end() :].strip(), source[: match.start()].strip()
    after = after.removeprefix(":").removeprefix(",").strip()
    return after or before


def help_lines(allowed: Collection[str]) -> list[tuple[str, str]]:
    """(usage, what it does with an example) for `help` and each verb in `allowed`."""
    return [(USAGE[v], _HELP[v]) for v in VERBS if v == "help" or v in allowed]


def parse_command(text: str) -> Command:
    """Parses what followed `/ngrok` or the bot mention; raises ParseError."""
    tokens = _tokenise(_LINK.sub(lambda m: m.group(1) or m.group(2), _normalise_spaces(text)))
    if not tokens:
        return Help()
    word = tokens[0].lower()
    verb = ALIASES.get(word, word)
    args = tokens[1:]
    if verb == "help":
        return Help()
    if verb == "sessions":
        return ListSessions(_parse_query(args))
    action = as_action(verb)
    if action is not None:
        return _parse_action(verb, action, args)
    if verb == "session":
        return ShowSession(_one_session_id(verb, args))
    if verb == "audit":
        return _parse_audit(args)
    if verb == "jobs":
        if args:
            raise ParseError(f"`jobs` takes nothing after it, not {_q(args[0])}.", USAGE["jobs"])
        return ShowRuns()
    close = difflib.get_close_matches(word, [*VERBS, *ALIASES], n=1, cutoff=0.6)
    hint = f" (did you mean `{ALIASES.get(close[0], close[0])}`?)" if close else ""
    raise ParseError(
        f"I don't know the command {_q(tokens[0])}{hint}; type `help` to see what I can do.",
        " | ".join(USAGE[v] for v in VERBS if v != "sessions") + " | sessions [filters]",
    )


def _normalise_spaces(text: str) -> str:
    """Slack may send non-breaking spaces, zero-width characters and smart quotes."""
    return _SPACES.sub(" ", _INVISIBLE.sub("", text)).translate(_QUOTES)


def _unescape(token: str) -> str:
    """Slack sends typed `&`, `<`, `>` as entities; markup like `<@U1>` arrives raw."""
    return token.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class _Quoted(str):
    """A token that began with a quote: always a free word, never a filter."""

    __slots__ = ()


def _tokenise(text: str) -> list[str]:
    """Splits on spaces; a quote opens a quoted part only at the start of a token or after
    an operator (`meta="a b"`), so an apostrophe inside a word stays literal."""
    tokens: list[str] = []
    buf: list[str] = []
    quote: str | None = None
    started = quoted = False
    escaped = False
    for i, char in enumerate(text):
        if quote:
            if escaped:
                buf.append(char)
                escaped = False
            elif char == "\\" and text[i + 1 : i + 2] in ("\\", quote):
                escaped = True  # `\"` and `\\` inside quotes, as _quote writes them
            elif char == quote:
                quote = None
            else:
                buf.append(char)
        elif char in "\"'" and (not buf or buf[-1] in "=<>") and char in text[i + 1 :]:
            quote, quoted = char, quoted or not started
            started = True
        elif char.isspace():
            if started:
                token = _unescape("".join(buf))
                tokens.append(_Quoted(token) if quoted else token)
                buf, started, quoted = [], False, False
        else:
            buf.append(char)
            started = True
    if started:
        token = _unescape("".join(buf))
        tokens.append(_Quoted(token) if quoted else token)
    return tokens


def _q(token: str) -> str:
    """A user's token quoted for an error sentence: short, one line, no backticks."""
    short = " ".join(token.split()).replace("`", "'")
    return f"`{short[:60]}…`" if len(short) > 60 else f"`{short or ' '}`"


def _clean_id(token: str) -> str:
    """Ids copied out of a code span may bring backticks or punctuation along."""
    return token.strip("`'\".,;:()[]")


def _one_session_id(verb: str, args: list[str]) -> str:
    usage = USAGE[verb]
    if not args:
        raise ParseError(
            f"`{verb}` needs a session id such as `{EXAMPLE_ID}`; `sessions` lists them.", usage
        )
    session_id = _clean_id(args[0])
    if not SESSION_ID_RE.fullmatch(session_id) and not _is_host_name(session_id):
        raise ParseError(_bad_id_sentence(args[0]), usage)
    if len(args) > 1:
        raise ParseError(
            f"`{verb}` takes one session id, so I don't know what to do with {_q(args[1])}; "
            f"type `{verb} <session-id>`.",
            usage,
        )
    return session_id


def _is_host_name(token: str) -> bool:
    """A word that names an agent's host (`edge-12`), not a mistyped session id."""
    return bool(HOST_NAME_RE.fullmatch(token)) and not _OTHER_ID.fullmatch(token)


def _parse_action(verb: str, action: Action, args: list[str]) -> RequestAction | FleetAction:
    """One id or host name acts on one agent; filters (or `all`) start a rolling run."""
    usage = USAGE[verb]
    single = len(args) == 1 and (
        bool(SESSION_ID_RE.fullmatch(_clean_id(args[0])))
        or (
            not isinstance(args[0], _Quoted)
            and not _FILTER_TOKEN.fullmatch(args[0])
            and args[0].lower() != "all"
        )
    )
    if not args or single:
        return RequestAction(action, _one_session_id(verb, args))
    options: dict[str, int] = {}
    rest: list[str] = []
    everything = False
    for token in args:
        match = None if isinstance(token, _Quoted) else _FILTER_TOKEN.fullmatch(token)
        if match and match.group(1).lower() in RUN_OPTIONS:
            key, op, value = match.group(1).lower(), match.group(2), match.group(3).strip()
            if op != "=":
                raise ParseError(f"{_q(token)} needs a whole number, e.g. `{key}=2`.", usage)
            options[key] = parse_run_option(key, value, usage, token=token)
        elif token.lower() == "all" and not isinstance(token, _Quoted):
            everything = True
        elif match and match.group(1).lower() == "limit":
            raise ParseError(
                f"{_q(token)} does not apply to `{verb}`: a run acts on every matching agent; "
                "narrow it with filters instead.",
                usage,
            )
        elif match and match.group(1).lower() not in _FILTER_KEYS:
            raise ParseError(
                f"I don't know the option {_q(match.group(1) + match.group(2))}; "
                f"{_FILTER_HINT.replace(' or limit=', ',')} or canary=, batch=, max_failures=, "
                "confirm=.",
                usage,
            )
        elif SESSION_ID_RE.fullmatch(_clean_id(token)):
            other = next(t for t in args if t is not token)
            raise ParseError(
                f"`{verb}` takes one session id, so I don't know what to do with {_q(other)}; "
                f"type `{verb} <session-id>`, or filters such as `{verb} region=eu` for a run.",
                usage,
            )
        else:
            rest.append(token)
    if not rest and not everything:
        raise ParseError(
            f"`{verb}` needs the agents to act on: a session id, a host name, filters such as "
            f"`region=eu os=linux`, or `all`.",
            usage,
        )
    return FleetAction(
        action,
        _parse_query(rest),
        RunOptions(
            canary=options.get("canary", 1),
            batch=options.get("batch"),
            max_failures=options.get("max_failures"),
            confirm=options.get("confirm"),
        ),
    )


def parse_run_option(key: str, value: str, usage: str = "", *, token: str = "") -> int:
    """One fleet-run option's value, typed (`batch=10`) or picked in a preview's menu: the
    same rule for both, a whole number from 0 to MAX_RUN_OPTION, and canary and batch at
    least 1. ParseError says what was wrong in one sentence."""
    if key not in RUN_OPTIONS:
        raise ParseError(f"I don't know the option {_q(key + '=')}.", usage)
    if not (value.isascii() and value.isdigit()) or not 0 <= int(value) <= MAX_RUN_OPTION:
        shown = _q(token or f"{key}={value}")
        raise ParseError(f"{shown} needs a whole number, e.g. `{key}=2`.", usage)
    if key in ("canary", "batch") and int(value) == 0:
        raise ParseError("`canary=` and `batch=` must be at least 1.", usage)
    return int(value)


def _bad_id_sentence(token: str) -> str:
    return (
        f"{_q(token)} is not a session id: ids are `ts_` and 20 to 40 letters and digits, "
        f"like `{EXAMPLE_ID}`."
    )


def _parse_audit(args: list[str]) -> ShowAudit:
    usage = USAGE["audit"]
    limit, session_id, user_id, csv = DEFAULT_AUDIT, None, None, False
    for token in args:
        cleaned = _clean_id(token)
        if token.lower() in ("csv", "--csv", "--json", "json", "export"):
            csv = True
        elif token.isdigit():
            limit = int(token)
            if not 1 <= limit <= MAX_AUDIT:
                raise ParseError(
                    f"{_q(token)} is out of range: `audit` shows 1 to {MAX_AUDIT} entries.", usage
                )
        elif (ref := parse_user_ref(token)) is not None:
            user_id = ref
        elif SESSION_ID_RE.fullmatch(cleaned):
            session_id = cleaned
        elif token.startswith("@"):
            raise ParseError(
                f"I can't tell who {_q(token)} is; pick the person from Slack's @ autocomplete "
                "so the mention carries their id.",
                usage,
            )
        elif cleaned.lower().startswith("ts_"):
            raise ParseError(_bad_id_sentence(token), usage)
        else:
            raise ParseError(
                f"`audit` does not understand {_q(token)}; give a number, a session id or an "
                "@mention, e.g. `audit 20 @alice`.",
                usage,
            )
    return ShowAudit(limit, session_id, user_id, csv)


@dataclass
class _QueryParts:
    exact: dict[str, list[str]] = field(default_factory=dict)
    bounds: list[VersionBound] = field(default_factory=list)
    meta: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    limit: int = DEFAULT_LIMIT


def _parse_query(args: list[str]) -> SessionQuery:
    parts = _QueryParts()
    for token in args:
        match = None if isinstance(token, _Quoted) else _FILTER_TOKEN.fullmatch(token)
        if match:
            _add_filter(parts, token, *match.groups())
        elif token.lower() in _FILTER_KEYS and not isinstance(token, _Quoted):
            raise ParseError(
                f"{_q(token)} needs a value right after it, with no spaces, e.g. "
                f"`{_FILTER_KEYS[token.lower()]}=…`.",
                USAGE["sessions"],
            )
        elif token.strip():
            parts.words.append(token.lower())
    exact = {key: tuple(dict.fromkeys(values)) for key, values in parts.exact.items()}
    return SessionQuery(
        api_filter=SessionFilter(
            regions=exact.get("region", ()),
            oses=exact.get("os", ()),
            agent_versions=exact.get("version", ()),
            ips=exact.get("ip", ()),
        ),
        version_bounds=tuple(dict.fromkeys(parts.bounds)),
        meta_contains=tuple(dict.fromkeys(parts.meta)),
        words=tuple(dict.fromkeys(parts.words)),
        limit=parts.limit,
    )


def _add_filter(parts: _QueryParts, token: str, raw_key: str, op: str, value: str) -> None:
    usage = USAGE["sessions"]
    key = _FILTER_KEYS.get(raw_key.lower())
    if key is None:
        raise ParseError(f"I don't know the filter {_q(raw_key + op)}; {_FILTER_HINT}.", usage)
    op = {"=<": "<=", "=>": ">="}.get(op, op)
    value = value.strip()
    if op == "!=":
        raise ParseError(f"{_q(token)}: `!=` is not supported; {_FILTER_HINT}.", usage)
    if not value:
        raise ParseError(f"{_q(token)} has no value; type e.g. `{key}{op}{_EXAMPLE[key]}`.", usage)
    if op != "=":
        if key != "version":
            raise ParseError(
                f"{_q(token)}: only version can be compared with `{op}`; use `{key}=`.", usage
            )
        if not _VERSION.fullmatch(value):
            raise ParseError(_bad_version_sentence(token), usage)
        parts.bounds.append(VersionBound(cast(BoundOp, op), value.removeprefix("v")))
        return
    if key == "meta":
        parts.meta.append(value.lower())
    elif key == "limit":
        parts.limit = _parse_limit(token, value)
    else:
        items = [v.strip() for v in value.split(",") if v.strip()]
        parts.exact.setdefault(key, []).extend(_check_value(key, token, v) for v in items)


_EXAMPLE = {
    "region": "us,eu",
    "os": "linux",
    "version": "3.20.1",
    "ip": "10.0.0.1",
    "meta": "prod",
    "limit": "50",
}


def _bad_version_sentence(token: str) -> str:
    return f"{_q(token)} is not a version number; use digits and dots, e.g. `version>=3.20`."


def _parse_limit(token: str, value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise ParseError(
            f"{_q(token)} is not a limit I can use; give a number from 1 to {MAX_LIMIT}, "
            "e.g. `limit=50`.",
            USAGE["sessions"],
        )
    return int(value)


def _check_value(key: str, token: str, value: str) -> str:
    usage = USAGE["sessions"]
    if key in ("region", "os"):
        value = value.lower()
        if not (_REGION if key == "region" else _OS).fullmatch(value):
            raise ParseError(
                f"{_q(value)} is not a valid {key}; type e.g. `{key}={_EXAMPLE[key]}`.", usage
            )
    elif key == "version":
        if not _VERSION.fullmatch(value):
            raise ParseError(_bad_version_sentence(token), usage)
        value = value.removeprefix("v")
    elif key == "ip":
        try:
            value = str(ipaddress.ip_address(value))
        except ValueError:
            raise ParseError(
                f"{_q(value)} is not an IP address; type e.g. `ip=10.0.0.1`.", usage
            ) from None
    return value
