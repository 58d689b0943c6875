"""BuildKit's shell-lexer corpus (envVarTest, wordsTest) and the cases of its lex_test.go.

The harness follows ``frontend/dockerfile/shell/lex_test.go`` (TestShellParser4EnvVars,
TestShellParser4Words, TestProcessWithMatches, TestShellParserMandatoryEnvVars); the corpus
files are vendored unmodified in corpus/ (see corpus/NOTICE). Every case passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from containerkit.dockerfile import ShellLex
from containerkit.dockerfile._go import trim_space
from containerkit.errors import InvalidArgument

CORPUS = Path(__file__).parent / "corpus"
ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _env_var_cases() -> list[tuple[int, str, str]]:
    """(line, source, expected) for the Unix ("U") and all-platform ("A") lines."""
    cases = []
    lines = (CORPUS / "envVarTest").read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines, 1):
        if line.startswith("#") or trim_space(line) == "":
            continue
        platform, source, expected = (trim_space(part) for part in trim_space(line).split("|"))
        assert platform in ("U", "A", "W"), f"envVarTest line {number}"
        if platform != "W":
            cases.append((number, source, expected))
    return cases


def _words_cases() -> list[tuple[int, str, list[str], dict[str, str]]]:
    """(line, source, expected words, env so far): ``ENV k=v`` lines add to the environment."""
    cases = []
    env: dict[str, str] = {}
    for number, line in enumerate((CORPUS / "wordsTest").read_text(encoding="utf-8").split("\n"), 1):
        if line.startswith("#") or line == "":
            continue
        if line.startswith("ENV "):
            key, _, value = line[3:].lstrip(" ").partition("=")
            env[key] = value
            continue
        source, expected = line.split("|")
        cases.append((number, trim_space(source), expected.lstrip(" ").split(","), dict(env)))
    return cases


ENV_VAR_CASES = _env_var_cases()
ENV_VAR_IDS = [str(case[0]) for case in ENV_VAR_CASES]
WORDS_CASES = _words_cases()
WORDS_IDS = [str(case[0]) for case in WORDS_CASES]


def test_the_corpus_is_all_there() -> None:
    assert len(ENV_VAR_CASES) == 228
    assert len(WORDS_CASES) == 24


@pytest.mark.parametrize(("line", "source", "expected"), ENV_VAR_CASES, ids=ENV_VAR_IDS)
def test_env_var(line: int, source: str, expected: str) -> None:
    lex = ShellLex()
    if expected == "error":
        with pytest.raises(InvalidArgument, match=r"^failed to process "):
            lex.expand(source, ENV)
    else:
        assert lex.expand(source, ENV) == expected


@pytest.mark.parametrize(("line", "source", "expected"), ENV_VAR_CASES, ids=ENV_VAR_IDS)
def test_env_var_with_backtick_escape(line: int, source: str, expected: str) -> None:
    """The same corpus with `` ` `` as the escape character (``# escape=```): swapping ``\\`` and
    `` ` `` in source and result must give the same answers (no case uses ``${v#pattern}``,
    whose pattern escapes stay ``\\`` in BuildKit whatever the escape character)."""
    swap = str.maketrans({"\\": "`", "`": "\\"})
    lex = ShellLex(escape="`")
    if expected == "error":
        with pytest.raises(InvalidArgument):
            lex.expand(source.translate(swap), ENV)
    else:
        assert lex.expand(source.translate(swap), ENV) == expected.translate(swap)


@pytest.mark.parametrize(("line", "source", "expected", "env"), WORDS_CASES, ids=WORDS_IDS)
def test_words(line: int, source: str, expected: list[str], env: dict[str, str]) -> None:
    try:
        result = ShellLex().expand_words(source, env)
    except InvalidArgument:
        result = ["error"]
    assert result == expected


# lex_test.go TestProcessWithMatches: (input, env, expected or None for an error)
PROCESS_CASES: list[tuple[str, dict[str, str], str | None]] = [
    ("x", {"DUMMY": "dummy"}, "x"),
    ("x ${UNUSED}", {"DUMMY": "dummy"}, "x "),
    ("x ${FOO}", {"FOO": "y"}, "x y"),
    ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc"),
    ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx bbb ccc"),
    ("${FOO:-}", {"FOO": "xxx", "BAR": ""}, "xxx"),
    ("${FOO:-}", {}, ""),
    ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb "),
    ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  "),
    ("${FOO?aaa}", {"FOO": "xxx", "BAR": ""}, "xxx"),
    ("${BAR?bbb}", {"FOO": "xxx", "BAR": ""}, ""),
    ("${BAZ?ccc}", {"FOO": "xxx", "BAR": ""}, None),
    ("${FOO:?aaa}", {"FOO": "xxx", "BAR": ""}, "xxx"),
    ("${BAR:?bbb}", {"FOO": "xxx", "BAR": ""}, None),
    ("${BAZ:?ccc}", {"FOO": "xxx", "BAR": ""}, None),
    ("${BAZ:?}", {"FOO": "xxx", "BAR": ""}, None),
    ("${FOO=aaa}", {"FOO": "xxx", "BAR": ""}, None),
    ("${FOO=:aaa}", {"FOO": "xxx", "BAR": ""}, None),
    ("${FOO=}", {}, None),
    ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x"),
    ("${FOO%%\\**}", {"FOO": "xx**"}, "xx"),
    ("${FOO#*x*y}", {"FOO": "xxyy"}, "y"),
    ("${FOO#*}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy"),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy"),
    ("${FOO#}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO##*x}", {"FOO": "xxyy"}, "yy"),
    ("${FOO##}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO#?\\?}", {"FOO": "???y"}, "?y"),
    ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy."),
    ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a"),
    ("${FOO%}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO%%$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy"),
    ("${FOO:#}", {}, None),
    ("${FOO:##}", {}, None),
    ("${FOO:%}", {}, None),
    ("${FOO:%%}", {}, None),
    (
        "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
        {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"},
        "/foo.*/*.txt - /foo..*.txt",
    ),
    (
        "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
        {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"},
        "/tmp/bar.txt - /bar.txt",
    ),
    (
        "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
        {"FOO": "/a/foo/b/c.txt", "NEEDLE": "/?/", "REPLACEMENT": "/"},
        "/foo/b/c.txt - /foo/c.txt",
    ),
    (
        "${FOO/$NEEDLE/$REPLACEMENT}",
        {"FOO": "http://google.de", "NEEDLE": "http://", "REPLACEMENT": "https://"},
        "https://google.de",
    ),
    ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt"),
    ("${FOO/$BAR/ww}", {"FOO": "xxyy", "BAR": ""}, "wwxxyy"),
    ("${FOO//ww}", {"FOO": "xxyy"}, None),
    ("${FOO//}", {"FOO": "xxyy"}, None),
    ("${FOO///}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO///}", {}, ""),
    (
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
        {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm", "TARGETVARIANT": "v7"},
        "something-v1.2.3.linux-arm-v7.tar.gz",
    ),
    (
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
        {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm64", "TARGETVARIANT": ""},
        "something-v1.2.3.linux-arm64.tar.gz",
    ),
]


@pytest.mark.parametrize(("source", "env", "expected"), PROCESS_CASES)
def test_process_with_matches(source: str, env: dict[str, str], expected: str | None) -> None:
    if expected is None:
        with pytest.raises(InvalidArgument):
            ShellLex().expand(source, env)
    else:
        assert ShellLex().expand(source, env) == expected


def test_matched_and_unmatched_names_are_reported() -> None:
    result = ShellLex().process("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""})
    assert result.matched == {"FOO", "BAR"}
    assert result.unmatched == {"BAZ"}


def test_mandatory_variables_carry_the_message() -> None:
    lex = ShellLex()
    assert lex.expand("${VAR:?message here$ARG}", {"VAR": "plain", "ARG": "x"}) == "plain"
    for env in ({"VAR": "", "ARG": "x"}, {"ARG": "x"}):
        with pytest.raises(InvalidArgument, match="VAR: message herex"):
            lex.expand("${VAR:?message here$ARG}", env)
    assert lex.expand("${VAR?message here$ARG}", {"VAR": "", "ARG": "x"}) == ""
    with pytest.raises(InvalidArgument, match="VAR: message herex"):
        lex.expand("${VAR?message here$ARG}", {"ARG": "x"})
    with pytest.raises(InvalidArgument, match="XXX: is not allowed to be unset"):
        lex.expand("${XXX?}", {})


def test_skip_unset_env_keeps_references_as_written() -> None:
    """What BuildKit's heredoc and lint passes use: unset variables stay in the text."""
    lex = ShellLex(skip_unset_env=True, raw_quotes=True)
    assert lex.expand('a $X ${Y} ${Z:-w} "q" $SET', {"SET": "s"}) == 'a $X ${Y} ${Z:-w} "q" s'


def test_nested_substitution_keeps_the_word_it_is_in() -> None:
    """The one deliberate difference (see lexer.py): BuildKit gives ["b"] here, a shell ["ab"]."""
    assert ShellLex().expand_words("a${x:-b} c", {}) == ["ab", "c"]


def test_escape_must_be_backslash_or_backtick() -> None:
    with pytest.raises(InvalidArgument, match="invalid escape token"):
        ShellLex(escape="!")
