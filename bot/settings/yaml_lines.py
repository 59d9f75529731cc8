"""Read a YAML document as a node tree so that every problem names its file, line and key.

yaml.safe_load gives plain dicts with no trace of where a value came from; a config error
then says only "bad value". Composing nodes instead keeps each value's line, so a problem
reads "<source>:<line>: <key path>: <what is wrong>". The walk records problems and goes
on, so all of them are reported at once. This module knows nothing of the bot's own keys:
bot/config.py holds the schema and uses YamlReader to walk it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import yaml

_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"


def show(value: object) -> str:
    """A value quoted for a message; long ones are only described, since a long text in
    the wrong place may be a pasted API key."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 24 else f"a text of {len(value)} characters"
    return "empty" if value is None else repr(value)


def _kind(node: yaml.Node, value: object) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, int | float):
        return "a number"
    return "text" if isinstance(value, str) else "a date"


class YamlReader:
    """Walks a composed YAML node tree, converting typed values and recording problems
    with their line; the walk goes on after a problem so all of them are found."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[tuple[int, str]] = []
        self._loader: yaml.SafeLoader | None = None

    def compose(self, text: str) -> yaml.Node | None:
        self._loader = yaml.SafeLoader(text)
        return self._loader.get_single_node()

    def problem_at(self, line: int, path: str, message: str) -> None:
        where = f"{self.source}:{line}: "
        entry = f"{where}{path}: {message}" if path else f"{where}{message}"
        if (line, entry) not in self.problems:  # an aliased node is walked twice
            self.problems.append((line, entry))

    def problem(self, node: yaml.Node, path: str, message: str) -> None:
        self.problem_at(node.start_mark.line + 1, path, message)

    def syntax_problem(self, exc: yaml.YAMLError) -> None:
        """Only the parser's short description: its snippet of the line could hold a secret."""
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        what = getattr(exc, "problem", None) or "the text is not valid YAML"
        context = getattr(exc, "context", None)
        message = (
            f"YAML syntax error: {context}, {what}" if context else f"YAML syntax error: {what}"
        )
        self.problem_at(mark.line + 1 if mark else 1, "", message)

    def sorted_problems(self) -> list[str]:
        return [entry for _, entry in sorted(self.problems, key=lambda item: item[0])]

    def scalar(self, node: yaml.Node) -> object:
        if not isinstance(node, yaml.ScalarNode):
            return None
        try:
            return self._loader.construct_object(node)  # type: ignore[union-attr]
        except yaml.YAMLError:
            return node.value  # an unknown !tag: judge the text as written

    def is_null(self, node: yaml.Node | None) -> bool:
        return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG)

    def mapping(
        self,
        node: yaml.Node | None,
        path: str,
        allowed: Iterable[str] | None = None,
        what: str = "key",
    ) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """key -> (key node, value node); None (and a problem) when it is not a mapping.
        Unknown and duplicate keys are reported and left out."""
        if node is None or self.is_null(node):
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.problem(
                node,
                path or "(top level)",
                f"must be a mapping (key: value), not {_kind(node, self.scalar(node))}",
            )
            return None
        first_line: dict[str, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                line = key_node.start_mark.line + 1
                if key_node.value in first_line:
                    self.problem(
                        key_node,
                        join_path(path, key_node.value),
                        f"duplicate key (first on line {first_line[key_node.value]})",
                    )
                first_line.setdefault(key_node.value, line)
        try:
            self._loader.flatten_mapping(node)  # type: ignore[union-attr]  # `<<: *anchor`
        except yaml.YAMLError as exc:
            self.problem(node, path, f"cannot merge: {getattr(exc, 'problem', exc)}")
            return None
        allowed = tuple(allowed) if allowed is not None else None
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, path, "keys must be plain text")
                continue
            key = key_node.value
            if allowed is not None and key not in allowed:
                self.problem(key_node, join_path(path, key), _unknown(key, allowed, what))
                continue
            entries[key] = (key_node, value_node)
        return entries

    def sequence(self, node: yaml.Node | None, path: str) -> list[yaml.Node]:
        if node is None or self.is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, path, f"must be a list, not {_kind(node, self.scalar(node))}")
            return []
        return list(node.value)

    def text(self, node: yaml.Node, path: str, allow_blank: bool = False) -> str | None:
        value = self.scalar(node)
        if isinstance(value, str) and (value.strip() or allow_blank):
            return value.strip()
        kind = "empty" if isinstance(value, str) else _kind(node, value)
        self.problem(node, path, f"must be text, not {kind}")
        return None

    def texts(
        self, node: yaml.Node | None, path: str, allow_blank: bool = False
    ) -> list[tuple[str, yaml.Node, str]]:
        """A list of texts, or one text standing for a list of one: (text, node, path)."""
        if node is None or self.is_null(node):
            return []
        if isinstance(node, yaml.SequenceNode):
            items = [(item, f"{path}[{index}]") for index, item in enumerate(node.value)]
        elif isinstance(node, yaml.ScalarNode):
            items = [(node, path)]
        else:
            self.problem(node, path, "must be a list of texts, not a mapping")
            return []
        found = []
        for item, item_path in items:
            value = self.text(item, item_path, allow_blank)
            if value is not None:
                found.append((value, item, item_path))
        return found

    def flag(self, node: yaml.Node | None, path: str) -> bool | None:
        if node is None:
            return None
        value = self.scalar(node)
        if isinstance(value, bool):
            return value
        self.problem(node, path, f"must be true or false, not {_kind(node, value)}")
        return None

    def choice(self, node: yaml.Node, path: str, choices: tuple[str, ...], what: str) -> str | None:
        """One of `choices`, or None and a problem naming the closest one."""
        value = self.text(node, path)
        if value is not None and value not in choices:
            self.problem(node, path, f"{show(value)} is not {what}; {_suggest(value, choices)}")
            return None
        return value


def join_path(path: str, key: str) -> str:
    """`path.key` for a message; a very long key is only described (it may be a pasted key)."""
    shown = key if len(key) <= 32 else f"<a key of {len(key)} characters>"
    return f"{path}.{shown}" if path else shown


def _unknown(word: str, allowed: tuple[str, ...], what: str) -> str:
    return f"unknown {what}; {_suggest(word, allowed)}"


def _suggest(word: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, allowed, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"expected one of: {', '.join(allowed)}"
