"""Go's ``filepath.Match``: the cases of Go's own ``path/filepath/match_test.go`` (``matchTests``).

COPY/ADD source globs and .dockerignore patterns both use these rules; note ``[^...]``
negates and ``[!...]`` does not (the difference from Python's ``fnmatch``).
"""

from __future__ import annotations

import fnmatch

import pytest

from containerkit.dockerfile.glob import BadPattern, has_meta, match

# (pattern, name, matches, bad pattern) from Go's matchTests
MATCH_TESTS = [
    ("abc", "abc", True, False),
    ("*", "abc", True, False),
    ("*c", "abc", True, False),
    ("a*", "a", True, False),
    ("a*", "abc", True, False),
    ("a*", "ab/c", False, False),
    ("a*/b", "abc/b", True, False),
    ("a*/b", "a/c/b", False, False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True, False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True, False),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False, False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False, False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True, False),
    ("a*b?c*x", "abxbbxdbxebxczzy", False, False),
    ("ab[c]", "abc", True, False),
    ("ab[b-d]", "abc", True, False),
    ("ab[e-g]", "abc", False, False),
    ("ab[^c]", "abc", False, False),
    ("ab[^b-d]", "abc", False, False),
    ("ab[^e-g]", "abc", True, False),
    ("a\\*b", "a*b", True, False),
    ("a\\*b", "ab", False, False),
    ("a?b", "a☺b", True, False),
    ("a[^a]b", "a☺b", True, False),
    ("a???b", "a☺b", False, False),
    ("a[^a][^a][^a]b", "a☺b", False, False),
    ("[a-ζ]*", "α", True, False),  # noqa: RUF001 (Greek, as in Go's test)
    ("*[a-ζ]", "A", False, False),
    ("a?b", "a/b", False, False),
    ("a*b", "a/b", False, False),
    ("[\\]a]", "]", True, False),
    ("[\\-]", "-", True, False),
    ("[x\\-]", "x", True, False),
    ("[x\\-]", "-", True, False),
    ("[x\\-]", "z", False, False),
    ("[\\-x]", "x", True, False),
    ("[\\-x]", "-", True, False),
    ("[\\-x]", "a", False, False),
    ("[]a]", "]", False, True),
    ("[-]", "-", False, True),
    ("[x-]", "x", False, True),
    ("[x-]", "-", False, True),
    ("[x-]", "z", False, True),
    ("[-x]", "x", False, True),
    ("[-x]", "-", False, True),
    ("[-x]", "a", False, True),
    ("\\", "a", False, True),
    ("[a-b-c]", "a", False, True),
    ("[", "a", False, True),
    ("[^", "a", False, True),
    ("[^bc", "a", False, True),
    ("a[", "a", False, True),
    ("a[", "ab", False, True),
    ("a[", "x", False, True),
    ("a/b[", "x", False, True),
    ("*x", "xxx", True, False),
]


@pytest.mark.parametrize(("pattern", "name", "matches", "bad"), MATCH_TESTS)
def test_go_match_tests(pattern: str, name: str, matches: bool, bad: bool) -> None:
    if bad:
        with pytest.raises(BadPattern):
            match(pattern, name)
    else:
        assert match(pattern, name) is matches


def test_bang_is_a_class_member_not_a_negation() -> None:
    assert match("[!a]*", "!x")
    assert not match("[!a]*", "bx")
    # Python's fnmatch reads it the other way; that is why docker-py's .dockerignore differs
    assert fnmatch.fnmatch("bx", "[!a]*")


def test_has_meta() -> None:
    assert [has_meta(p) for p in ("a/b", "*.go", "a?", "[ab]", "a\\b")] == [False, True, True, True, True]
