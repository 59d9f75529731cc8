"""`python -m bot console`: the real app in a terminal, with Slack served in process.

`render` turns Block Kit into readable text, `loopback` captures what the app sends to Slack,
and `repl` dispatches typed commands and numbered clicks to the app built by `create_app`.
"""
