"""Pytest fixtures for the ngrok API stand-in, plus checks of its answers against the official
OpenAPI spec (tests/specs/ngrok-openapi.yaml, a copy of shared/specs/) and the error shape of
reference §7."""

from __future__ import annotations

import copy
import re
import ssl
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from tests.servers.ngrok_api import NgrokApiServer

SPEC_PATH = Path(__file__).resolve().parents[1] / "specs" / "ngrok-openapi.yaml"
_LIST_SCHEMAS = {
    "tunnel_sessions": "TunnelSessionList",
    "endpoints": "EndpointList",
    "tunnels": "TunnelList",
}
_ITEM_SCHEMAS = {"tunnel_sessions": "TunnelSession", "endpoints": "Endpoint", "tunnels": "Tunnel"}


class NgrokSpec:
    """`components.schemas` of the official spec as Draft 4 validators. The spec types
    `next_page_uri` as a plain string although the API sends null on the last page
    (reference §11), so the list schemas are patched to allow null."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        components = copy.deepcopy(spec["components"])
        for name in _LIST_SCHEMAS.values():
            components["schemas"][name]["properties"]["next_page_uri"]["type"] = ["string", "null"]
        self._components = components
        self.validator = cache(self._make_validator)

    def _make_validator(self, name: str) -> jsonschema.Draft4Validator:
        schema = {"$ref": f"#/components/schemas/{name}", "components": self._components}
        return jsonschema.Draft4Validator(schema)

    def validate(self, schema_name: str, obj: Any) -> None:
        self.validator(schema_name).validate(obj)

    @staticmethod
    def schema_for_path(path: str) -> str | None:
        parts = path.split("/")[1:]
        if len(parts) == 1:
            return _LIST_SCHEMAS.get(parts[0])
        if len(parts) == 2:
            return _ITEM_SCHEMAS.get(parts[0])
        return None

    def check_response(self, response: httpx.Response) -> None:
        """Validates a 2xx JSON body against its spec schema, and any JSON error body against
        the §7 shape; a 204 must be empty."""
        response.read()
        if response.status_code == 204:
            assert response.content == b""
            return
        if not response.headers.get("content-type", "").startswith("application/json"):
            return
        body = response.json()
        if response.is_success:
            schema = self.schema_for_path(response.request.url.path)
            assert schema is not None, f"no spec schema for {response.request.url.path}"
            self.validate(schema, body)
        else:
            check_error_shape(
                body, response.status_code, response.headers.get("ngrok-operation-id")
            )


def check_error_shape(body: Any, status: int, operation_header: str | None = None) -> None:
    """The error body of reference §7: `error_code` (optional, a string), `status_code` equal
    to the HTTP status, `msg`, and `details` a string map holding `operation_id`."""
    assert isinstance(body, dict)
    assert set(body) <= {"error_code", "status_code", "msg", "details"}, body
    assert body["status_code"] == status
    assert isinstance(body["msg"], str) and body["msg"]
    if "error_code" in body:
        assert isinstance(body["error_code"], str) and body["error_code"]
    details = body["details"]
    assert isinstance(details, dict) and all(isinstance(v, str) for v in details.values())
    assert re.fullmatch(r"op_[0-9A-Za-z]{27}", details.get("operation_id", "")), details
    if operation_header is not None:
        assert operation_header == details["operation_id"]


def checked_client(server: NgrokApiServer, spec: NgrokSpec, **kwargs: Any) -> httpx.Client:
    """An httpx client for `server` that checks every response it receives with `spec`."""
    kwargs.setdefault("headers", server.client_headers())
    kwargs.setdefault("timeout", 10.0)
    if server.ca_bundle_path:
        kwargs.setdefault("verify", ssl.create_default_context(cafile=server.ca_bundle_path))
    return httpx.Client(
        base_url=server.base_url, event_hooks={"response": [spec.check_response]}, **kwargs
    )


@pytest.fixture(scope="session")
def ngrok_spec() -> NgrokSpec:
    """The official spec, loaded once per session (parsing it takes a second or two)."""
    with SPEC_PATH.open(encoding="utf-8") as handle:
        return NgrokSpec(yaml.safe_load(handle))


@pytest.fixture
def ngrok_api() -> Iterator[NgrokApiServer]:
    """A started server with 30 sessions and a quick (0.1 s) restart."""
    with NgrokApiServer(sessions=30, restart_delay=0.1) as server:
        yield server


@pytest.fixture
def ngrok_api_factory() -> Iterator[Callable[..., NgrokApiServer]]:
    """`factory(**NgrokApiServer kwargs)` -> a started server; all are stopped at teardown."""
    started: list[NgrokApiServer] = []

    def factory(**kwargs: Any) -> NgrokApiServer:
        server = NgrokApiServer(**kwargs).start()
        started.append(server)
        return server

    yield factory
    for server in reversed(started):
        server.stop()
