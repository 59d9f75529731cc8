"""TunnelSession reads the API's JSON leniently and writes the same shape back."""

from __future__ import annotations

from bot.ngrok.models import TunnelSession

RAW = {
    "id": "ts_334AeguNPwngGnMIrd3SZLE7pdZ",
    "uri": "https://api.ngrok.com/tunnel_sessions/ts_334AeguNPwngGnMIrd3SZLE7pdZ",
    "agent_version": "3.1000.0-development",
    "credential": {"id": "cr_334AeHbsqlb7v3zBOf6OPnt6tig", "uri": ""},
    "ip": "10.110.2.2",
    "os": "linux",
    "region": "us",
    "started_at": "2025-09-22T18:34:27Z",
    "transport": "ngrok/2",
    "a_field_from_the_future": {"ignored": True},
}


def test_round_trip_through_the_api_shape():
    session = TunnelSession.from_api(RAW)
    again = TunnelSession.from_api(session.to_api())
    assert again == session
    assert "metadata" not in session.to_api()  # empty fields are left out, as the API does
    assert session.started_at is not None and session.started_at.tzinfo is not None


def test_missing_and_garbled_fields_read_as_empty():
    session = TunnelSession.from_api({"id": "ts_x", "started_at": "yesterday", "credential": 3})
    assert session.metadata == "" and session.credential.id == "" and session.started_at is None
    assert session.uptime() is None and not session.is_ssh and not session.is_windows
