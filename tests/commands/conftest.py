"""Fixtures of the in-process scenario tests (see scenario.py)."""

from tests.commands.scenario import scenario_factory, stack

__all__ = ["scenario_factory", "stack"]
