"""Which sessions a rule (or the watcher) applies to: the `match:` keys, defined once for
`rules` and `alerts` in BOT_CONFIG."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from bot.ngrok.models import TunnelSession
from bot.settings.yaml_lines import YamlReader

MATCH_KEYS = ("metadata_contains", "regions", "oses", "agent_versions")


@dataclass(frozen=True)
class MatchRule:
    """Which sessions a rule applies to. Within a field any value may match; all non-empty
    fields must match. Empty means every session."""

    metadata_contains: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    oses: tuple[str, ...] = ()
    agent_versions: tuple[str, ...] = ()

    @property
    def is_catch_all(self) -> bool:
        return not (self.metadata_contains or self.regions or self.oses or self.agent_versions)

    def matches(self, session: TunnelSession) -> bool:
        """Metadata by case-insensitive substring, region and os case-insensitively, agent
        version exactly."""
        metadata = session.metadata.casefold()
        if self.metadata_contains and not any(
            part.casefold() in metadata for part in self.metadata_contains
        ):
            return False
        if self.regions and session.region.casefold() not in {r.casefold() for r in self.regions}:
            return False
        if self.oses and session.os.casefold() not in {o.casefold() for o in self.oses}:
            return False
        return not self.agent_versions or session.agent_version in self.agent_versions


def parse_match(reader: YamlReader, node: yaml.Node, path: str) -> MatchRule:
    """A `match:` mapping; problems go to the reader with their line."""
    fields = reader.mapping(node, path, MATCH_KEYS) or {}
    values: dict[str, tuple[str, ...]] = {}
    for key, (_, value_node) in fields.items():
        items = reader.texts(value_node, f"{path}.{key}", allow_blank=key == "metadata_contains")
        for text, item_node, item_path in items:
            if not text:
                reader.problem(item_node, item_path, "an empty text would match every session")
        values[key] = tuple(text for text, _, _ in items if text)
    return MatchRule(**values)
