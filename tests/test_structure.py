"""Cheap structural tests that catch drift between the manifest, the code and the design.

The manifest is checked against Slack's published schemas; the ids Slack sends are checked
against the listeners a real Bolt App registers; the import direction of DESIGN.md is checked
by parsing every module with `ast`; the Procfile is checked for the two process types.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib
import inspect
import json
import re
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from slack_bolt import App, BoltResponse
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.web.base_client import BaseClient

from bot.app import create_app
from bot.deps import build_deps
from bot.settings.env import load_settings
from bot.slack import ids

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "tests" / "specs"  # copies of ../shared/specs, so CI needs no sibling folder
MANIFEST_SCHEMAS = ("slack-manifest.schema.1.0.0.json", "slack-manifest.schema.2.0.0.json")
BOT_MODULES = sorted((REPO / "bot").rglob("*.py"))
COMMAND_MODULES = sorted((REPO / "commands").rglob("*.py"))
VIEW_MODULES = [
    REPO / "bot" / "slack" / "blocks.py",
    *sorted((REPO / "bot/slack/views").glob("*.py")),
]

# Scopes each Slack Web API method needs (https://docs.slack.dev/reference/methods/...).
# A method the code starts calling must be added here, which forces a look at the manifest.
SCOPES_BY_METHOD = {
    "auth_test": set(),
    "apps_connections_open": set(),  # app-level token (connections:write), not a bot scope
    "chat_postMessage": {"chat:write"},
    "chat_postEphemeral": {"chat:write"},
    "chat_update": {"chat:write"},
    "chat_getPermalink": set(),
    "chat_delete": {"chat:write"},
    "files_upload_v2": {"files:write"},  # files.getUploadURLExternal + completeUploadExternal
    "views_open": set(),  # needs only the trigger_id of a click
    "conversations_open": {"im:write"},  # the DM an audit CSV goes to
    "conversations_info": {"channels:read", "groups:read"},
    "usergroups_users_list": {"usergroups:read"},
    "views_publish": set(),  # the App Home; app_home_opened needs no scope either
}
REQUIRED_SCOPES = {"commands", "chat:write", "chat:write.public", "app_mentions:read"}
REQUIRED_SCOPES |= {"usergroups:read"}


def load_manifest() -> dict:
    return yaml.safe_load((REPO / "manifest.yml").read_text(encoding="utf-8"))


@functools.cache
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it; `from a import b` yields `a` and `a.b`
    (b may be a submodule), relative imports are resolved against the file's package."""
    package = ".".join(path.relative_to(REPO).parent.parts)
    found: set[str] = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = f"{package}.{base}".rstrip(".")
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def top(module: str) -> str:
    return module.split(".")[0]


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


# ---- manifest -------------------------------------------------------------------------------


@pytest.mark.parametrize("schema_name", MANIFEST_SCHEMAS)
def test_manifest_validates_against_slack_schema(schema_name):
    schema = json.loads((SPECS / schema_name).read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    manifest = load_manifest()
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(manifest)]
    assert errors == []
    # The Socket Mode variant the manifest's header comment describes must be valid too.
    socket_variant = copy.deepcopy(manifest)
    socket_variant["settings"]["socket_mode_enabled"] = True
    for command in socket_variant["features"]["slash_commands"]:
        del command["url"]
    del socket_variant["settings"]["event_subscriptions"]["request_url"]
    del socket_variant["settings"]["interactivity"]["request_url"]
    assert list(validator.iter_errors(socket_variant)) == []
    # The schema is strict enough to notice a broken command (it must start with "/").
    broken = copy.deepcopy(manifest)
    broken["features"]["slash_commands"][0]["command"] = "ngrok"
    assert list(validator.iter_errors(broken)) != []


# ---- manifest, listeners and ids ------------------------------------------------------------


@pytest.fixture
def app_and_servers(tmp_path, slack_api, ngrok_api_factory):
    """A real Bolt App from the composition root, pointed at live local servers so the test
    can prove construction calls neither."""
    ngrok = ngrok_api_factory(sessions=1)
    settings = load_settings(
        {
            "SLACK_BOT_TOKEN": slack_api.bot_token,
            "SLACK_SIGNING_SECRET": "structure-test-signing-secret",
            "SLACK_API_URL": slack_api.base_url,
            "NGROK_API_KEY": "structure-test-ngrok-key-0123",
            "NGROK_API_URL": ngrok.base_url,
            "STATE_PATH": str(tmp_path / "state.sqlite3"),
        },
        config_text=None,
        config_source="test",
    )
    deps = build_deps(settings)
    try:
        yield create_app(deps, token_verification=False), slack_api, ngrok
    finally:
        deps.close()


def listener_inventory(app: App) -> list[tuple[str, object]]:
    """(kind, constraint) of every registered listener, read from Bolt's builtin matchers:
    each is a closure named `<kind>.<locals>.func` over the id it was registered with."""
    inventory = []
    for listener in app._listeners:
        assert len(listener.matchers) == 1, "a listener with extra matchers needs a look"
        func = listener.matchers[0].func
        kind = func.__qualname__.split(".")[0]
        constraints = inspect.getclosurevars(func).nonlocals
        constraint = {
            "command": lambda c: c["command"],
            "shortcut": lambda c: c["callback_id"],
            "action": lambda c: c["constraints"],
            "event": lambda c: c["event_type"],
            "view_submission": lambda c: c["callback_id"],
        }[kind](constraints)
        inventory.append((kind, constraint))
    return inventory


def matching_listeners(app: App, body: dict) -> int:
    request = BoltRequest(body=body, mode="socket_mode")
    return sum(
        listener.matches(req=request, resp=BoltResponse(status=200)) for listener in app._listeners
    )


def test_app_construction_calls_neither_slack_nor_ngrok(app_and_servers):
    app, slack, ngrok = app_and_servers
    assert isinstance(app, App)
    assert app._listeners, "create_app registered no listener"
    assert slack.calls() == []
    assert ngrok.log() == []


def test_slash_command_is_the_same_in_manifest_code_and_app(app_and_servers):
    app, _, _ = app_and_servers
    manifest_commands = [c["command"] for c in load_manifest()["features"]["slash_commands"]]
    registered = [c for kind, c in listener_inventory(app) if kind == "command"]
    assert manifest_commands == [ids.SLASH_COMMAND]
    assert registered == [ids.SLASH_COMMAND]
    body = {"command": ids.SLASH_COMMAND, "text": "", "team_id": "T1", "user_id": "U1"}
    assert matching_listeners(app, body) == 1


def test_shortcut_is_the_same_in_manifest_code_and_app(app_and_servers):
    app, _, _ = app_and_servers
    shortcuts = load_manifest()["features"]["shortcuts"]
    registered = [c for kind, c in listener_inventory(app) if kind == "shortcut"]
    assert [s["callback_id"] for s in shortcuts] == [ids.SHORTCUT_THREAD_SESSIONS]
    assert registered == [ids.SHORTCUT_THREAD_SESSIONS]
    body = {"type": shortcuts[0]["type"] + "_action", "callback_id": shortcuts[0]["callback_id"]}
    assert body["type"] == "message_action"
    assert matching_listeners(app, body) == 1


def test_every_action_id_has_exactly_one_listener(app_and_servers):
    app, _, _ = app_and_servers
    assert len(set(ids.ALL_ACTIONS)) == len(ids.ALL_ACTIONS)
    registered = [c for kind, c in listener_inventory(app) if kind == "action"]
    assert sorted(registered) == sorted(ids.ALL_ACTIONS)
    for action_id in [*ids.ALL_ACTIONS, "ngrok_not_an_action"]:
        body = {"type": "block_actions", "actions": [{"action_id": action_id, "block_id": "b"}]}
        assert matching_listeners(app, body) == (action_id in ids.ALL_ACTIONS), action_id


def test_app_mention_is_subscribed_and_handled(app_and_servers):
    app, _, _ = app_and_servers
    assert "app_mention" in load_manifest()["settings"]["event_subscriptions"]["bot_events"]
    events = [c for kind, c in listener_inventory(app) if kind == "event"]
    assert events == ["app_mention", ids.EVENT_APP_HOME_OPENED]
    body = {"type": "event_callback", "event": {"type": "app_mention", "text": "hi"}}
    assert matching_listeners(app, body) == 1


def test_app_home_is_enabled_subscribed_and_handled(app_and_servers):
    app, _, _ = app_and_servers
    manifest = load_manifest()
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert sorted(events) == sorted(["app_mention", ids.EVENT_APP_HOME_OPENED])
    body = {"type": "event_callback", "event": {"type": "app_home_opened", "tab": "home"}}
    assert matching_listeners(app, body) == 1


def test_only_known_listener_kinds_are_registered(app_and_servers):
    app, _, _ = app_and_servers
    kinds = sorted(kind for kind, _ in listener_inventory(app))
    expected = ["command", "shortcut", "event", "event", "view_submission"]
    assert kinds == sorted([*expected, *["action"] * len(ids.ALL_ACTIONS)])


def test_the_reason_modal_is_registered_under_its_callback_id(app_and_servers):
    app, _, _ = app_and_servers
    views = [c for kind, c in listener_inventory(app) if kind == "view_submission"]
    assert views == [ids.VIEW_DECISION_REASON]
    assert load_manifest()["settings"]["interactivity"]["is_enabled"] is True
    view = {"type": "modal", "callback_id": ids.VIEW_DECISION_REASON}
    body = {"type": "view_submission", "view": view}
    assert matching_listeners(app, body) == 1


def slack_methods_called() -> set[str]:
    """Names of WebClient API methods called anywhere in bot/ and commands/."""
    api_methods = set(dir(WebClient)) - set(dir(BaseClient))
    called = set()
    for path in BOT_MODULES + COMMAND_MODULES:
        for node in ast.walk(parse(path)):
            function = getattr(node, "func", None)
            if isinstance(function, ast.Attribute) and function.attr in api_methods:
                called.add(function.attr)
    return called


def test_manifest_scopes_cover_what_the_code_calls():
    scopes = set(load_manifest()["oauth_config"]["scopes"]["bot"])
    called = slack_methods_called()
    assert {"chat_postMessage", "usergroups_users_list"} <= called  # the scan finds calls
    unknown = called - set(SCOPES_BY_METHOD)
    assert unknown == set(), f"add the scopes of {sorted(unknown)} to SCOPES_BY_METHOD"
    needed = set().union(*(SCOPES_BY_METHOD[m] for m in called)) | REQUIRED_SCOPES
    assert needed <= scopes, f"manifest lacks {sorted(needed - scopes)}"


# ---- action ids in the renderers ------------------------------------------------------------


def ids_imported_by(path: Path) -> dict[str, str]:
    """ACTION_* names a module imports from bot.slack.ids, with the alias it binds."""
    names = {}
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.ImportFrom) and node.module == "bot.slack.ids":
            for alias in node.names:
                if alias.name.startswith("ACTION_"):
                    names[alias.asname or alias.name] = alias.name
    return names


@pytest.mark.parametrize("path", VIEW_MODULES, ids=rel)
def test_renderers_use_only_registered_action_ids(path):
    module = importlib.import_module(".".join(path.relative_to(REPO).with_suffix("").parts))
    for bound, name in ids_imported_by(path).items():
        assert getattr(ids, name) in ids.ALL_ACTIONS, f"{rel(path)}: {name} not in ALL_ACTIONS"
        assert getattr(module, bound) == getattr(ids, name)


def test_renderers_between_them_use_every_action_id():
    used = {getattr(ids, name) for path in VIEW_MODULES for name in ids_imported_by(path).values()}
    assert used == set(ids.ALL_ACTIONS)


@pytest.mark.parametrize("path", VIEW_MODULES, ids=rel)
def test_buttons_take_their_action_id_from_bot_ids(path):
    """A string literal as an action id would dodge the checks above."""
    imported = ids_imported_by(path)
    for node in ast.walk(parse(path)):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", None))
        position = {"button": 1, "overflow": 0, "static_select": 0}.get(name)
        if position is None:
            continue
        keyword = {k.arg: k.value for k in node.keywords}.get("action_id")
        arg = keyword or (node.args[position] if len(node.args) > position else None)
        if path.name == "blocks.py" and isinstance(arg, ast.Name) and arg.id == "action_id":
            continue  # a primitive passing its own parameter on
        assert isinstance(arg, ast.Name) and arg.id in imported, (
            f"{rel(path)}:{node.lineno}: {name}() action id must be a bot.ids constant"
        )


# ---- import direction (DESIGN.md): rules per directory, not hand-kept lists ---------------

PRODUCT_MODULES = {
    ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): path
    for path in BOT_MODULES + COMMAND_MODULES
}
IO_MODULES = {"httpx", "sqlite3", "redis", "socket", "os", "requests", "subprocess", "urllib3"}
IO_MODULES |= {"urllib.request", "http.client", "slack_sdk.web", "slack_sdk.WebClient", "huey"}
IO_MODULES |= {"slack_bolt", "bot.ngrok.client", "bot.deps", "bot.jobs", "bot.settings.env"}
IO_MODULES |= {"bot.state.store", "bot.state.store_sqlite", "bot.state.store_redis"}
IO_MODULES |= {"bot.state.audit", "bot.slack.groups", "bot.slack.invocation"}
# The layers below the composition root: they know their own subject and nothing above it.
LOWER_PACKAGES = ("bot.ngrok", "bot.state", "bot.slack", "bot.settings")
UPPER_MODULES = {"bot.app", "bot.deps", "bot.policy", "bot.jobs", "bot.wsgi", "bot.__main__"}
UPPER_MODULES |= {"bot.doctor", "bot.gunicorn_conf"}


def modules_under(package: str) -> list[str]:
    return sorted(m for m in PRODUCT_MODULES if m == package or m.startswith(package + "."))


def product_imports(module: str) -> set[str]:
    """The product modules one module imports (a `from a import b` names the module a.b when
    it is one, else the module a)."""
    found = set()
    for name in imported_modules(PRODUCT_MODULES[module]):
        while name and name not in PRODUCT_MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def is_third_party_or_stdlib(module: str, allowed: tuple[str, ...]) -> bool:
    return top(module) in sys.stdlib_module_names or top(module) in allowed


@pytest.mark.parametrize("module", modules_under("bot.ngrok"))
def test_ngrok_package_imports_only_stdlib_httpx_and_itself(module):
    for name in imported_modules(PRODUCT_MODULES[module]):
        if name == "__future__" or name.startswith("__future__."):
            continue
        if top(name) == "bot":
            assert name.startswith("bot.ngrok"), f"{module} imports {name}"
        else:
            assert is_third_party_or_stdlib(name, ("httpx",)), f"{module} imports {name}"


@pytest.mark.parametrize("package", LOWER_PACKAGES)
def test_lower_packages_import_nothing_above_them(package):
    offenders = {
        module: sorted(
            product_imports(module) & UPPER_MODULES
            | {m for m in product_imports(module) if top(m) == "commands"}
        )
        for module in modules_under(package)
    }
    assert {m: bad for m, bad in offenders.items() if bad} == {}


@pytest.mark.parametrize("module", modules_under("bot.slack"))
def test_slack_package_does_no_ngrok_io(module):
    assert "bot.ngrok.client" not in product_imports(module)


def test_nothing_under_bot_imports_commands_but_the_composition_root():
    offenders = [
        m for m in modules_under("bot") if any(top(i) == "commands" for i in product_imports(m))
    ]
    assert offenders == ["bot.app"]


def test_commands_do_not_import_the_entry_points():
    forbidden = {"bot.app", "bot.wsgi", "bot.__main__", "bot.gunicorn_conf"}
    offenders = {
        m: sorted(product_imports(m) & forbidden)
        for m in modules_under("commands")
        if product_imports(m) & forbidden
    }
    assert offenders == {}


def test_no_import_cycles_among_product_modules():
    graph = {module: product_imports(module) for module in PRODUCT_MODULES}
    # A package imports its own modules only through `from pkg import mod`; that is not a cycle.
    for module, imports in graph.items():
        imports -= {m for m in imports if module.startswith(m + ".")}
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_import_scan_sees_imports_anywhere(tmp_path, monkeypatch):
    """The scanner itself: it must notice an import inside a function, and relative ones."""
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    sample = tmp_path / "bot" / "sample.py"
    sample.parent.mkdir()
    sample.write_text("def f():\n    import commands.x\nfrom . import app\n", encoding="utf-8")
    assert {"commands.x", "bot.app"} <= imported_modules(sample)


@pytest.mark.parametrize("path", VIEW_MODULES, ids=rel)
def test_renderers_import_no_io_library(path):
    imports = imported_modules(path)
    bad = {m for m in imports if m in IO_MODULES or top(m) in IO_MODULES}
    bad |= {m for m in imports for io in IO_MODULES if m.startswith(io + ".")}
    assert bad == set(), f"{rel(path)} imports {sorted(bad)}"


def reads_environment(tree: ast.Module) -> list[int]:
    """Lines that touch os.environ / os.getenv / os.putenv, however os was imported."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            lines += [node.lineno for a in node.names if a.name in ("environ", "getenv")][:1]
    return lines


def test_only_settings_reads_the_environment():
    readers = {
        rel(path): reads_environment(parse(path))
        for path in BOT_MODULES + COMMAND_MODULES
        if reads_environment(parse(path))
    }
    assert set(readers) <= {rel(p) for p in (REPO / "bot" / "settings").glob("*.py")}
    assert readers.get("bot/settings/env.py"), "the scan must at least find settings/env.py"


def test_environment_scan_sees_every_spelling():
    sample = "from os import getenv\nimport os\nos.environ['X']\nimport os as o\no.getenv('Y')\n"
    assert reads_environment(ast.parse(sample)) == [1, 3, 5]


# ---- Procfile -------------------------------------------------------------------------------


def procfile() -> dict[str, str]:
    entries = {}
    for line in (REPO / "Procfile").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def test_procfile_runs_gunicorn_for_web_the_bot_for_worker_and_the_consumer_for_jobs():
    entries = procfile()
    assert set(entries) == {"web", "worker", "jobs"}
    assert entries["jobs"] == "python -m bot jobs"
    web = entries["web"].split()
    assert web[0] == "gunicorn"
    assert "python:bot.gunicorn_conf" in web
    assert re.search(r"""['"]?bot\.wsgi:load_app\(\)['"]?$""", entries["web"])
    wsgi = importlib.import_module("bot.wsgi")
    assert callable(wsgi.load_app)
    assert entries["worker"] == "python -m bot"


def test_no_type_ignores_outside_the_yaml_reader():
    """The action vocabulary is typed so that strings from outside are narrowed with
    `as_action`; an ignore would let an unchecked string through again."""
    found = {
        rel(path): text.count("type: ignore")
        for path in BOT_MODULES + COMMAND_MODULES
        if "type: ignore" in (text := path.read_text(encoding="utf-8"))
    }
    assert set(found) <= {"bot/settings/yaml_lines.py", "bot/settings/env.py"}


def test_a_fresh_clone_has_what_the_readme_links_and_ignores_sqlite_side_files():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "../shared" not in readme
    for link in re.findall(r"\]\(([^)#]+)\)", readme):
        if not link.startswith(("http://", "https://", "mailto:")):
            assert (REPO / link).exists(), f"README links {link}, which is not in the project"
    assert "docs/DESIGN.md" in readme
    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").split()
    assert {"*.sqlite3-wal", "*.sqlite3-shm"} <= set(ignored)


def test_only_commands_listeners_has_bolt_signatures():
    """Every function that takes Bolt's `ack` lives in commands/listeners.py: one place acks
    and enqueues, so nothing else can do slow work before the ack."""
    found = {
        rel(path)
        for path in BOT_MODULES + COMMAND_MODULES
        for node in ast.walk(parse(path))
        if isinstance(node, ast.FunctionDef)
        and any(a.arg == "ack" for a in node.args.args + node.args.kwonlyargs)
    }
    assert found == {"commands/listeners.py"}
