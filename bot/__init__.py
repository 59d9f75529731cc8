"""ngrok-ops: list and control ngrok tunnel sessions from Slack."""

__version__ = "0.1.0"
