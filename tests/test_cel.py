"""The CEL filter builder: exact expressions, and no value can escape its string literal."""

import random
import re

import pytest

from bot.ngrok.cel import SessionFilter, cel_string

_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}


def read_literal(text, start=0):
    """A minimal CEL double-quoted string reader: returns (value, index after the literal)."""
    assert text[start] == '"'
    out, i = [], start + 1
    while True:
        char = text[i]
        if char == '"':
            return "".join(out), i + 1
        if char == "\\":
            nxt = text[i + 1]
            if nxt == "u":
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        assert char not in "\n\r", "raw line break inside a literal"
        out.append(char)
        i += 1


HOSTILE = [
    'x" || obj.id != "',
    "\\",
    '\\"',
    '" ) || true || ("',
    "line\nbreak\r\ttab",
    "\x00\x07\x1b\x7f\u2028",
    "ünïcødé ✓ 日本",
    "",
    "'single' `back`",
    '"]',
]


@pytest.mark.parametrize("value", HOSTILE)
def test_cel_string_round_trips_and_ends_where_it_should(value):
    literal = cel_string(value)
    parsed, end = read_literal(literal)
    assert parsed == value
    assert end == len(literal)


def test_cel_string_round_trips_random_text():
    rng = random.Random(1234)
    alphabet = '"\\\n\r\t abc\x00\x1f\x7f]|&=!' + "é✓"
    for _ in range(500):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        literal = cel_string(value)
        assert read_literal(literal) == (value, len(literal))


def test_cel_string_rejects_lone_surrogates():
    with pytest.raises(ValueError):
        cel_string("a\ud800b")


def test_empty_filter_is_none():
    assert SessionFilter().to_cel() is None
    assert SessionFilter(regions=(), oses=()).to_cel() is None


def test_single_values_use_equality():
    assert SessionFilter(regions=("us",)).to_cel() == 'obj.region == "us"'
    assert SessionFilter(agent_versions=("3.1.0",)).to_cel() == 'obj.agent_version == "3.1.0"'


def test_several_values_use_in_and_fields_are_anded_in_a_stable_order():
    flt = SessionFilter(
        oses=("linux", "windows"),
        regions=("us", "eu"),
        agent_versions=("3.1.0",),
        ips=("10.0.0.1", '10"0'),
    )
    assert flt.to_cel() == (
        'obj.region in ["us", "eu"] && obj.os in ["linux", "windows"] && '
        'obj.agent_version == "3.1.0" && obj.ip in ["10.0.0.1", "10\\"0"]'
    )


def test_values_are_deduplicated_and_a_lone_string_is_one_value():
    assert SessionFilter(regions=("us", "us", "eu", "us")).regions == ("us", "eu")
    assert SessionFilter(regions="us").regions == ("us",)
    assert SessionFilter(oses=["linux"]).oses == ("linux",)
    with pytest.raises(TypeError):
        SessionFilter(ips=(1,))


def test_hostile_values_stay_inside_their_literals():
    flt = SessionFilter(ips=tuple(HOSTILE), regions=('x" || obj.id != "',))
    cel = flt.to_cel()
    # Strip every literal; what remains must be the fixed skeleton only.
    skeleton, i, values = [], 0, []
    while i < len(cel):
        if cel[i] == '"':
            value, i = read_literal(cel, i)
            values.append(value)
            skeleton.append("S")
        else:
            skeleton.append(cel[i])
            i += 1
    assert values == ['x" || obj.id != "', *HOSTILE]
    expected = "obj.region == S && obj.ip in [" + ", ".join(["S"] * len(HOSTILE)) + "]"
    assert "".join(skeleton) == expected
    assert not re.search(r"\|\|", "".join(skeleton))
