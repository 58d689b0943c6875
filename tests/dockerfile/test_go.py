"""The Go behaviours the Dockerfile package reproduces, checked on cases from Go's own tests
(time_test.go parseDurationTests, strconv quote_test.go, regexp all_test.go replaceTests)."""

from __future__ import annotations

import re

import pytest

from containerkit.dockerfile._go import is_space, parse_duration, quote, regexp_replace_all, trim_space

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

# time_test.go parseDurationTests
DURATIONS = [
    ("0", 0),
    ("5s", 5 * SECOND),
    ("30s", 30 * SECOND),
    ("1478s", 1478 * SECOND),
    ("-5s", -5 * SECOND),
    ("+5s", 5 * SECOND),
    ("-0", 0),
    ("+0", 0),
    ("5.0s", 5 * SECOND),
    ("5.6s", 5 * SECOND + 600_000_000),
    ("5.s", 5 * SECOND),
    (".5s", 500_000_000),
    ("1.0s", SECOND),
    ("1.00s", SECOND),
    ("1.004s", SECOND + 4_000_000),
    ("1.0040s", SECOND + 4_000_000),
    ("100.00100s", 100 * SECOND + 1_000_000),
    ("10ns", 10),
    ("11us", 11_000),
    ("12\u00b5s", 12_000),
    ("12\u03bcs", 12_000),
    ("13ms", 13_000_000),
    ("14s", 14 * SECOND),
    ("15m", 15 * MINUTE),
    ("16h", 16 * HOUR),
    ("3h30m", 3 * HOUR + 30 * MINUTE),
    ("10.5s4m", 4 * MINUTE + 10 * SECOND + 500_000_000),
    ("-2m3.4s", -(2 * MINUTE + 3 * SECOND + 400_000_000)),
    ("1h2m3s4ms5us6ns", HOUR + 2 * MINUTE + 3 * SECOND + 4_000_000 + 5_000 + 6),
    ("39h9m14.425s", 39 * HOUR + 9 * MINUTE + 14 * SECOND + 425_000_000),
    ("52763797000ns", 52763797000),
    ("0.3333333333333333333h", 20 * MINUTE),
    ("9007199254740993ns", (1 << 53) + 1),
    ("9223372036854775807ns", (1 << 63) - 1),
    ("9223372036854775.807us", (1 << 63) - 1),
    ("9223372036s854ms775us807ns", (1 << 63) - 1),
    ("-9223372036854775808ns", -(1 << 63)),
    ("-9223372036854775.808us", -(1 << 63)),
    ("-9223372036s854ms775us808ns", -(1 << 63)),
    ("-2562047h47m16.854775808s", -(1 << 63)),
    ("0.100000000000000000000h", 6 * MINUTE),
    ("0.830103483285477580700h", 49 * MINUTE + 48 * SECOND + 372539827),
]

BAD_DURATIONS = ["", "3", "-", "s", ".", "-.", ".s", "+.s", "1d", "\x85\x85", "9223372036854775808ns",
                 "9223372036854775.808us", "9223372036854ms775us808ns", "-9223372036854775809ns"]  # fmt: skip


@pytest.mark.parametrize(("text", "nanoseconds"), DURATIONS)
def test_parse_duration(text: str, nanoseconds: int) -> None:
    assert parse_duration(text) == nanoseconds


@pytest.mark.parametrize("text", BAD_DURATIONS)
def test_parse_duration_errors(text: str) -> None:
    with pytest.raises(ValueError, match=r"^time: "):
        parse_duration(text)


def test_quote() -> None:
    """strconv.Quote: printable runes kept, controls as \\xNN or the C escapes, others \\u."""
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    assert quote("\x00\a\x7f\n") == '"\\x00\\a\\x7f\\n"'
    assert quote("☺ é") == '"☺ é"'
    assert quote("\u2028\U000e0001") == '"\\u2028\\U000e0001"'


def test_replace_all_skips_an_empty_match_right_after_a_match() -> None:
    """regexp replaceTests: Go gives "-a-b-d-" where Python's re.sub gives "-a-b--d-"."""
    assert regexp_replace_all(re.compile("x*"), "abxd", "-") == "-a-b-d-"
    assert regexp_replace_all(re.compile("a+"), "baaac", "$0$0") == "baaaaaac"
    assert regexp_replace_all(re.compile("b"), "abc", "$$x$1") == "a$xc"


def test_go_spaces() -> None:
    assert is_space("\x85") and is_space("\u3000") and not is_space("\x1c")
    assert trim_space("\x1c a \u00a0") == "\x1c a"
