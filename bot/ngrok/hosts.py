"""Host names: how people name their agents, read from the agent's metadata.

JSON metadata names the host under one of a few keys (`host`, `hostname`, `name`, or the keys
BOT_CONFIG lists under `host_keys`); plain-text metadata may carry `host=…` pairs. Pure.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence

from bot.ngrok.models import TunnelSession

DEFAULT_HOST_KEYS: tuple[str, ...] = ("host", "hostname", "name")
HOST_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,99}")
MAX_HOST_LENGTH = 100


def host_of(session: TunnelSession, keys: Sequence[str] = DEFAULT_HOST_KEYS) -> str | None:
    """The agent's host name from its metadata, or None when it names none."""
    return host_from_metadata(session.metadata, keys)


def host_from_metadata(metadata: str, keys: Sequence[str] = DEFAULT_HOST_KEYS) -> str | None:
    text = metadata.strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            for key in keys:
                value = parsed.get(key)
                if isinstance(value, str) and value.strip():
                    return value.strip()[:MAX_HOST_LENGTH]
            return None
    for key in keys:
        match = re.search(rf"(?:^|[\s,;]){re.escape(key)}=([^\s,;\"']+)", text)
        if match:
            return match.group(1)[:MAX_HOST_LENGTH]
    return None


def sessions_named(
    sessions: Iterable[TunnelSession], name: str, keys: Sequence[str] = DEFAULT_HOST_KEYS
) -> list[TunnelSession]:
    """Every session whose host name is `name` (case-insensitive)."""
    wanted = name.casefold()
    return [s for s in sessions if (host_of(s, keys) or "").casefold() == wanted]


def nearest_names(
    sessions: Iterable[TunnelSession],
    name: str,
    keys: Sequence[str] = DEFAULT_HOST_KEYS,
    count: int = 3,
) -> list[str]:
    """The host names closest to `name`, for "did you mean"."""
    names = sorted({h for s in sessions if (h := host_of(s, keys))})
    by_fold = {n.casefold(): n for n in names}
    close = difflib.get_close_matches(name.casefold(), list(by_fold), n=count, cutoff=0.5)
    return [by_fold[c] for c in close]
