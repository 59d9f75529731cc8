"""The `alerts:` and `digest:` sections of BOT_CONFIG: what the watcher watches, where it
says so, and when the daily digest goes out.

`alerts` may stand at the top level (every account) or under `accounts.<name>.alerts` (that
account only; it replaces the top-level one). Alerts are on only where a `channel` is given.
Problems are reported with their line, like the rest of the config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bot.settings.match import MatchRule, parse_match
from bot.settings.yaml_lines import YamlReader, show

ALERT_KEYS = (
    "channel",
    "poll_interval",
    "min_down",
    "match",
    "budget_share",
    "flapping_window",
    "flapping_count",
    "max_alerts",
    "alert_window",
)
DIGEST_KEYS = ("channel", "at", "timezone")
DEFAULT_POLL_INTERVAL = 60.0
DEFAULT_MIN_DOWN = 120.0
DEFAULT_BUDGET_SHARE = 0.25
DEFAULT_FLAPPING_WINDOW = 600.0
DEFAULT_FLAPPING_COUNT = 3
DEFAULT_MAX_ALERTS = 6
DEFAULT_ALERT_WINDOW = 600.0
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")
_CHANNEL = re.compile(r"[CG][A-Z0-9]{2,}")
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True)
class AlertsConfig:
    """How one account is watched and where its alerts go."""

    channel: str
    poll_interval: float = DEFAULT_POLL_INTERVAL
    min_down: float = DEFAULT_MIN_DOWN
    match: MatchRule = field(default_factory=MatchRule)
    budget_share: float = DEFAULT_BUDGET_SHARE
    flapping_window: float = DEFAULT_FLAPPING_WINDOW
    flapping_count: int = DEFAULT_FLAPPING_COUNT
    # Per channel: at most max_alerts top-level alerts in alert_window; the rest go into the
    # thread of the latest one.
    max_alerts: int = DEFAULT_MAX_ALERTS
    alert_window: float = DEFAULT_ALERT_WINDOW


@dataclass(frozen=True)
class DigestConfig:
    """Once a day at `hour:minute` in `timezone`, a summary of the last 24 h in `channel`."""

    channel: str
    hour: int = 9
    minute: int = 0
    timezone: str = "UTC"
    zone: ZoneInfo = field(default=ZoneInfo("UTC"), repr=False, compare=False)


def parse_alerts(reader: YamlReader, node: yaml.Node, path: str) -> AlertsConfig | None:
    """An `alerts:` mapping; None when it has problems (they are on the reader)."""
    fields = reader.mapping(node, path, ALERT_KEYS)
    if fields is None:
        return None
    before = len(reader.problems)
    if "channel" not in fields:
        reader.problem(node, path, "missing key 'channel' (where the alerts go; C… or G…)")
        return None
    channel = _channel(reader, fields["channel"][1], f"{path}.channel")
    poll = _seconds(reader, fields, "poll_interval", path, DEFAULT_POLL_INTERVAL, 1, 3600)
    min_down = _seconds(reader, fields, "min_down", path, DEFAULT_MIN_DOWN, 1, 86_400)
    window = _seconds(reader, fields, "flapping_window", path, DEFAULT_FLAPPING_WINDOW, 1, 86_400)
    share = DEFAULT_BUDGET_SHARE
    if "budget_share" in fields:
        share_node = fields["budget_share"][1]
        value = reader.scalar(share_node)
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1:
            share = float(value)
        else:
            reader.problem(
                share_node, f"{path}.budget_share", f"{show(value)} is not a share between 0 and 1"
            )
    count = _count(reader, fields, "flapping_count", path, DEFAULT_FLAPPING_COUNT, 2, 1000)
    max_alerts = _count(reader, fields, "max_alerts", path, DEFAULT_MAX_ALERTS, 1, 1000)
    alert_window = _seconds(reader, fields, "alert_window", path, DEFAULT_ALERT_WINDOW, 1, 86_400)
    match = parse_match(reader, fields["match"][1], f"{path}.match") if "match" in fields else None
    if channel is None or len(reader.problems) > before:
        return None
    return AlertsConfig(
        channel=channel,
        poll_interval=poll,
        min_down=min_down,
        match=match or MatchRule(),
        budget_share=share,
        flapping_window=window,
        flapping_count=count,
        max_alerts=max_alerts,
        alert_window=alert_window,
    )


def parse_digest(reader: YamlReader, node: yaml.Node, path: str) -> DigestConfig | None:
    """A `digest:` mapping: channel (required), at ("09:00"), timezone (IANA name, UTC)."""
    fields = reader.mapping(node, path, DIGEST_KEYS)
    if fields is None:
        return None
    if "channel" not in fields:
        reader.problem(node, path, "missing key 'channel' (where the digest goes; C… or G…)")
        return None
    channel = _channel(reader, fields["channel"][1], f"{path}.channel")
    hour, minute = 9, 0
    if "at" in fields:
        at_node = fields["at"][1]
        value = reader.scalar(at_node)
        # YAML 1.1 reads 9:00 (no leading zero) as the sexagesimal number 540.
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1440:
            hour, minute = divmod(value, 60)
        elif isinstance(value, str) and (found := _CLOCK.fullmatch(value.strip())):
            hour, minute = int(found.group(1)), int(found.group(2))
        else:
            reader.problem(at_node, f"{path}.at", f'{show(value)} is not a time such as "09:00"')
            return None
    name, zone = "UTC", ZoneInfo("UTC")
    if "timezone" in fields:
        tz_node = fields["timezone"][1]
        text = reader.text(tz_node, f"{path}.timezone")
        if text is None:
            return None
        try:
            name, zone = text, ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            reader.problem(
                tz_node,
                f"{path}.timezone",
                f"{show(text)} is not a time zone such as Europe/Berlin",
            )
            return None
    if channel is None:
        return None
    return DigestConfig(channel=channel, hour=hour, minute=minute, timezone=name, zone=zone)


def _channel(reader: YamlReader, node: yaml.Node, path: str) -> str | None:
    text = reader.text(node, path)
    if text is not None and not _CHANNEL.fullmatch(text):
        reader.problem(node, path, f"{show(text)} is not a Slack channel id (C… or G…)")
        return None
    return text


def _count(
    reader: YamlReader,
    fields: dict[str, tuple[yaml.Node, yaml.Node]],
    key: str,
    path: str,
    default: int,
    low: int,
    high: int,
) -> int:
    """A whole number within [low, high]."""
    if key not in fields:
        return default
    node = fields[key][1]
    value = reader.scalar(node)
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    reader.problem(node, f"{path}.{key}", f"{show(value)} is not a count from {low} to {high}")
    return default


def _seconds(
    reader: YamlReader,
    fields: dict[str, tuple[yaml.Node, yaml.Node]],
    key: str,
    path: str,
    default: float,
    low: float,
    high: float,
) -> float:
    """Plain seconds (90) or a duration such as 90s, 2m, 1h30m, within [low, high]."""
    if key not in fields:
        return default
    node = fields[key][1]
    value = reader.scalar(node)
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        found = _DURATION.fullmatch(value.strip())
        if found and any(found.groups()):
            hours, minutes, secs = found.groups()
            seconds = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs or 0)
    if seconds is None:
        reader.problem(node, f"{path}.{key}", f"{show(value)} is not a duration such as 90s or 2m")
        return default
    if not low <= seconds <= high:
        reader.problem(node, f"{path}.{key}", f"must be between {low:g} s and {high:g} s")
        return default
    return seconds
