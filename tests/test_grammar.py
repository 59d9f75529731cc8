"""The command grammar: every verb, alias, filter form and error, without Slack or ngrok."""

from datetime import UTC, datetime

import pytest

from bot.ngrok.cel import SessionFilter
from bot.ngrok.models import TunnelSession
from commands.grammar import (
    USAGE,
    VERBS,
    FleetAction,
    Help,
    ListSessions,
    ParseError,
    RequestAction,
    RunOptions,
    SessionQuery,
    ShowAudit,
    ShowSession,
    VersionBound,
    compare_versions,
    help_lines,
    parse_command,
    parse_run_option,
    strip_mention,
)

SID = "ts_334AeguNPwngGnMIrd3SZLE7pdZ"


def query(text: str) -> SessionQuery:
    command = parse_command(text)
    assert isinstance(command, ListSessions)
    return command.query


def error(text: str) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_command(text)
    return info.value


# --- verbs and aliases -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "help", "HELP", "?", "help sessions", "\u00a0help"])
def test_help_and_empty(text):
    assert parse_command(text) == Help()


@pytest.mark.parametrize("verb", ["sessions", "ls", "list", "LS", "Sessions"])
def test_session_list_aliases(verb):
    assert parse_command(verb) == ListSessions(SessionQuery())


@pytest.mark.parametrize("verb", ["session", "show", "get", "details", "SHOW"])
def test_show_aliases(verb):
    assert parse_command(f"{verb} {SID}") == ShowSession(SID)


@pytest.mark.parametrize("op", ["restart", "stop", "update"])
def test_actions(op):
    assert parse_command(f"{op} {SID}") == RequestAction(op, SID)
    assert parse_command(f"  {op.upper()}   {SID} ") == RequestAction(op, SID)


@pytest.mark.parametrize("wrapped", [f"`{SID}`", f"{SID}.", f"“{SID}”", f"'{SID}'"])
def test_ids_copied_with_punctuation_are_accepted(wrapped):
    assert parse_command(f"stop {wrapped}") == RequestAction("stop", SID)


def test_session_id_keeps_its_case():
    assert parse_command(f"get {SID}") == ShowSession(SID)
    assert parse_command(f"get {SID.lower()}") == ShowSession(SID.lower())


# --- audit -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("audit", ShowAudit(10, None, None)),
        ("audit 25", ShowAudit(25, None, None)),
        ("audit 1", ShowAudit(1, None, None)),
        ("audit 50", ShowAudit(50, None, None)),
        (f"audit {SID}", ShowAudit(10, SID, None)),
        ("audit <@U123ABC>", ShowAudit(10, None, "U123ABC")),
        ("audit 5 <@U123ABC|alice>", ShowAudit(5, None, "U123ABC")),
        (f"audit {SID} 7", ShowAudit(7, SID, None)),
        ("audit 50 csv", ShowAudit(50, None, None, True)),
        ("audit --json", ShowAudit(10, None, None, True)),
    ],
)
def test_audit_forms(text, expected):
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "bad"),
    [("audit 0", "`0`"), ("audit 51", "`51`"), ("audit @bob", "`@bob`"), ("audit ts_1", "`ts_1`")],
)
def test_audit_errors_name_the_token(text, bad):
    err = error(text)
    assert bad in err.message
    assert err.usage == USAGE["audit"]


def test_audit_rejects_words():
    err = error("audit yesterday")
    assert "`yesterday`" in err.message
    assert "audit 20 @alice" in err.message


# --- session list filters --------------------------------------------------------------------


def test_exact_filters_go_to_the_api_and_lowercase_region_and_os():
    q = query("sessions REGION=US,eu OS=Linux version=3.20.1 ip=10.0.0.1,10.0.0.2")
    assert q.api_filter == SessionFilter(
        regions=("us", "eu"),
        oses=("linux",),
        agent_versions=("3.20.1",),
        ips=("10.0.0.1", "10.0.0.2"),
    )
    assert q.api_filter.to_cel() == (
        'obj.region in ["us", "eu"] && obj.os == "linux" && '
        'obj.agent_version == "3.20.1" && obj.ip in ["10.0.0.1", "10.0.0.2"]'
    )


def test_repeated_keys_add_alternatives_and_duplicates_collapse():
    q = query("ls region=us region=eu,us")
    assert q.api_filter.regions == ("us", "eu")


@pytest.mark.parametrize(
    ("text", "bounds"),
    [
        ("version<3.20", (VersionBound("<", "3.20"),)),
        ("version<=3.20.1", (VersionBound("<=", "3.20.1"),)),
        ("version>3", (VersionBound(">", "3"),)),
        ("version>=v3.20", (VersionBound(">=", "3.20"),)),
        ("version=>3.2 version=<4", (VersionBound(">=", "3.2"), VersionBound("<=", "4"))),
        ("version&gt;=3.20 version&lt;4", (VersionBound(">=", "3.20"), VersionBound("<", "4"))),
    ],
)
def test_version_bounds(text, bounds):
    q = query(f"sessions {text}")
    assert q.version_bounds == bounds
    assert q.api_filter.to_cel() is None


def test_meta_words_and_limit():
    q = query('sessions meta="Env: PROD" Prod db-01 limit=50')
    assert q.meta_contains == ("env: prod",)
    assert q.words == ("prod", "db-01")
    assert q.limit == 50


def test_meta_keeps_commas_and_repeats_mean_all():
    q = query('list meta={"a":1,"b":2} metadata=team')
    assert q.meta_contains == ('{"a":1,"b":2}', "team")


def test_smart_quotes_nbsp_and_zero_width_are_tolerated():
    q = query("sessions\u00a0meta=\u201cteam blue\u201d\u200b \u2018db one\u2019")
    assert q.meta_contains == ("team blue",)
    assert q.words == ("db one",)


def test_apostrophe_inside_a_word_is_literal():
    assert query("sessions bob's laptop").words == ("bob's", "laptop")


def test_quoted_word_that_looks_like_a_filter_stays_a_word():
    assert query("sessions 'region=us' \"os\"").words == ("region=us", "os")


def test_slack_links_are_unwrapped():
    q = query("sessions <http://db.example.com|db.example.com> meta=<https://x.io>")
    assert q.words == ("db.example.com",)
    assert q.meta_contains == ("https://x.io",)


def test_ipv6_is_normalised():
    assert query("sessions ip=2001:DB8::1").api_filter.ips == ("2001:db8::1",)


@pytest.mark.parametrize(
    "text",
    [
        "sessions",
        "sessions region=us,eu os=linux version>=3.20 'prod' limit=5",
        "sessions meta='a b' \"it's\" 'os' 'x=y' version=3.1000.0-development",
        "sessions ip=10.0.0.1 version<4 version>=3.2 words here",
    ],
)
def test_describe_parses_back_to_the_same_query(text):
    q = query(text)
    assert query(f"sessions {q.describe()}") == q


def test_describe_reads_well_in_a_header():
    q = query("sessions region=us os=linux version>=3.20 prod")
    assert q.describe() == "region=us os=linux version>=3.20 prod"


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("sessions colour=red", "`colour=`"),
        ("sessions region<us", "`region<us`"),
        ("sessions version>=abc", "`version>=abc`"),
        ("sessions version=latest", "`version=latest`"),
        ("sessions version!=3.2", "`version!=3.2`"),
        ("sessions limit=0", "`limit=0`"),
        ("sessions limit=1001", "`limit=1001`"),
        ("sessions limit=ten", "`limit=ten`"),
        ("sessions ip=999.1.1.1", "`999.1.1.1`"),
        ("sessions os=lin/ux", "`lin/ux`"),
        ("sessions region=u$", "`u$`"),
        ("sessions region=", "`region=`"),
        ("sessions os", "`os`"),
    ],
)
def test_filter_errors_name_the_token_and_give_the_usage(text, bad):
    err = error(text)
    assert bad in err.message
    assert err.usage == USAGE["sessions"]
    assert err.message.replace("e.g. ", "").count(". ") == 0, "one sentence"
    assert str(err) == err.message


def test_limit_bounds_are_inclusive():
    assert query("ls limit=1").limit == 1
    assert query("ls limit=1000").limit == 1000


# --- id and verb errors ----------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["session", "restart", "stop", "update"])
def test_missing_id(verb):
    err = error(verb)
    assert f"`{verb}` needs a session id" in err.message
    assert err.usage == USAGE[verb]


@pytest.mark.parametrize(
    "bad",
    [
        "ts_123",
        "tn_334AeguNPwngGnMIrd3SZLE7pdZ",
        "ts_" + "a" * 41,
        "ts_334AeguNPwngGnMIrd3SZL-7pdZ",
    ],
)
def test_malformed_id(bad):
    err = error(f"stop {bad}")
    assert f"`{bad}`" in err.message
    assert "20 to 40 letters and digits" in err.message
    assert err.usage == USAGE["stop"]


def test_extra_argument_after_id():
    err = error(f"restart {SID} now")
    assert "`now`" in err.message
    assert err.usage == USAGE["restart"]


def test_unknown_command_suggests_the_closest_verb():
    err = error(f"stpo {SID}")
    assert "`stpo`" in err.message
    assert "did you mean `stop`" in err.message
    assert "help" in err.usage and "stop <session-id" in err.usage


def test_unknown_command_without_a_near_match():
    err = error("xyzzy")
    assert "`xyzzy`" in err.message and "did you mean" not in err.message


def test_long_bad_tokens_are_shortened_and_lose_backticks():
    err = error("stop ts_`" + "x" * 200)
    assert "`" + "x" * 50 not in err.message
    assert err.message.count("`") % 2 == 0


# --- mentions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"<@UBOT1> stop {SID}", f"stop {SID}"),
        ("<@UBOT1|ngrok-ops>\u00a0sessions region=us", "sessions region=us"),
        ("<@UBOT1>: help", "help"),
        ("hey <@UBOT1> ls", "ls"),
        ("sessions <@UBOT1>", "sessions"),
        ("<@UBOT1>", ""),
        ("ls", "ls"),
    ],
)
def test_strip_mention(text, expected):
    assert strip_mention(text, "UBOT1") == expected


def test_strip_mention_leaves_other_users_alone():
    assert strip_mention("<@UBOT1> audit <@U222>", "UBOT1") == "audit <@U222>"
    assert parse_command(strip_mention("<@UBOT1> audit <@U222>", "UBOT1")) == ShowAudit(
        10, None, "U222"
    )


def test_strip_mention_without_bot_id_drops_a_leading_mention():
    assert strip_mention("<@U9ABC> stop x", None) == "stop x"
    assert strip_mention("stop <@U9ABC>", None) == "stop <@U9ABC>"


# --- versions and local matching -------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("3.9.0", "3.10.0", -1),
        ("3.10.0", "3.9.0", 1),
        ("3.20", "3.20.0", 0),
        ("3.1000.0-development", "3.1000.0", -1),
        ("3.1000.0-development", "3.999.9", 1),
        ("v3.2.1", "3.2.1", 0),
        ("2.3.41", "3", -1),
        ("3.0.0-beta", "3.0.0-alpha", 1),
    ],
)
def test_compare_versions(a, b, expected):
    assert compare_versions(a, b) == expected


@pytest.mark.parametrize("garbage", ["", "latest", "x3.1"])
def test_compare_versions_rejects_non_versions(garbage):
    with pytest.raises(ValueError):
        compare_versions(garbage, "3.0")


def session(**fields) -> TunnelSession:
    raw = {"id": SID, "ip": "10.1.2.3", "agent_version": "3.20.1", "metadata": ""}
    raw.update(fields)
    return TunnelSession.from_api(raw)


def test_matches_locally_version_bounds_are_numeric():
    q = query("sessions version>=3.9 version<3.100")
    assert q.matches_locally(session(agent_version="3.20.1"))
    assert q.matches_locally(session(agent_version="3.9.0"))
    assert not q.matches_locally(session(agent_version="3.8.9"))
    assert not q.matches_locally(session(agent_version="3.100.0"))
    assert not q.matches_locally(session(agent_version=""))


def test_matches_locally_metadata_and_words():
    q = query('sessions meta=team=blue "db 01"')
    meta = '{"Team=Blue": true, "host": "DB 01"}'
    assert q.matches_locally(session(metadata=meta))
    assert not q.matches_locally(session(metadata='{"team=blue": true}'))


def test_words_search_metadata_id_and_ip_and_all_must_match():
    assert query("ls 10.1.2").matches_locally(session())
    assert query("ls 7pdz").matches_locally(session())
    assert query("ls prod").matches_locally(session(metadata="env=PROD"))
    assert not query("ls prod eu").matches_locally(session(metadata="env=prod"))


def test_exact_filters_are_not_applied_locally():
    assert query("ls region=eu").matches_locally(session(region="us"))


def test_empty_query_matches_everything():
    started = datetime(2025, 1, 1, tzinfo=UTC)
    assert SessionQuery().matches_locally(TunnelSession(id=SID, started_at=started))


# --- help ------------------------------------------------------------------------------------


def test_help_lines_show_only_allowed_verbs_and_always_help():
    lines = help_lines({"sessions", "session"})
    assert [usage for usage, _ in lines] == [USAGE["help"], USAGE["sessions"], USAGE["session"]]
    assert all("Example:" in what for _, what in lines)


def test_help_lines_cover_every_verb_and_examples_parse():
    lines = help_lines(set(VERBS))
    assert len(lines) == len(VERBS)
    for _, what in lines:
        example = what.split("Example: `")[1].rstrip("`")
        example = example.replace("@alice", "<@U123>")
        parse_command(example)


@pytest.mark.parametrize(
    "term", ["a'b\"c", "it's \\", "a\\'", "x\\\\y", "'", '"', "\\", "meta", "a b", "version<3"]
)
def test_describe_round_trips_terms_with_quotes_and_backslashes(term):
    """Page buttons re-run `describe()`; every free word and meta= value must survive it."""
    from dataclasses import replace

    query = replace(
        parse_command("sessions").query, words=(term.lower(),), meta_contains=(term.lower(),)
    )
    again = parse_command("sessions " + query.describe()).query
    assert again.words == query.words and again.meta_contains == query.meta_contains


def test_run_options_typed_or_picked_follow_one_rule():
    command = parse_command("restart os=linux canary=2 batch=10 max_failures=0")
    assert isinstance(command, FleetAction)
    assert command.options == RunOptions(canary=2, batch=10, max_failures=0)
    assert parse_run_option("batch", "10") == 10 and parse_run_option("max_failures", "0") == 0
    for typed in ("batch=0", "canary=0"):
        assert error(f"restart all {typed}").message == "`canary=` and `batch=` must be at least 1."
    for bad in ("batch=²", "batch=-1", "batch=1.5", "max_failures=100001", "canary=x"):
        assert "needs a whole number" in error(f"restart all {bad}").message, bad
    with pytest.raises(ParseError) as info:
        parse_run_option("batch", "²")  # a digit to str.isdigit, not to int()
    assert info.value.message == "`batch=²` needs a whole number, e.g. `batch=2`."
    with pytest.raises(ParseError):
        parse_run_option("limit", "5")
