"""The watcher's pure logic: what it remembers (model), what one scan changed (diff)
and what watching costs (cost)."""
