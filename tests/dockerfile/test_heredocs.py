"""Heredocs: BuildKit's parser_heredoc_test.go, ported.

corpus/parser/heredoc/Dockerfile is the Dockerfile literal of TestParseExtractsHeredoc,
copied from that test (see corpus/NOTICE); the expected heredocs below are the test's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from containerkit.dockerfile import Heredoc
from containerkit.dockerfile.parser import (
    _heredocs_from_line,
    chomp_heredoc_content,
    parse_heredoc,
    parse_tree,
)

SOURCE = (Path(__file__).parent / "corpus" / "parser" / "heredoc" / "Dockerfile").read_text(encoding="utf-8")


def h(name: str, content: str, *, expand: bool = True, chomp: bool = False, fd: int = 0) -> Heredoc:
    return Heredoc(name=name, content=content, file_descriptor=fd, expand=expand, chomp=chomp)


# TestParseExtractsHeredoc: the heredocs of children 1.. (after FROM)
EXPECTED: list[list[Heredoc]] = [
    [],  # ENV NAME=me
    [],  # RUN ls
    [],  # USER <<INVALID
    [],  # INVALID
    [h("EMPTY", "")],
    [h("EMPTY2", "", fd=3)],
    [],  # RUN "<<NOHEREDOC"
    [h("INDENT", "\tfoo\n\tbar\n")],
    [h("UNINDENT", "\tbaz\n\tquux\n", chomp=True)],
    [h("UNINDENT2", "\tbaz\n\tquux\n", chomp=True)],
    [h("EXPAND", "\texpand $NAME\n", chomp=True)],
    [h("NOEXPAND", "\tdon't expand $NAME\n", expand=False, chomp=True)],
    [h("COPY", "echo hello world\necho foo bar\n")],
    [h("COMMENT", "# internal comment\necho hello world\necho foo bar # trailing comment\n")],
    [h("MOUNT", "echo hello\n")],
    [h("FILE1", "content 1\n"), h("FILE2", "content 2\n")],
    [h("EOF", "\"foo\"\n'bar'\n")],
    [h("X", "Y\n"), h("Y", "X\n")],
    [h("COMPLEX", "print('hello world')\n")],
    [h("file.txt", "hello world\n")],
    [h("eof", "echo foo\n", expand=False)],
    [h("eo'f", "echo foo\n")],
    [h("eo'f", "echo foo\n", expand=False)],
    [h("one two", "echo bar\n", expand=False)],
    [h("$EOF", "")],
    [h("EOF", "")],
    [h("EOF", "")],
]


def test_parse_extracts_heredoc() -> None:
    children = parse_tree(SOURCE).root.children
    assert [child.heredocs for child in children[1 : len(EXPECTED) + 1]] == EXPECTED


def test_json_form_has_no_heredocs() -> None:
    """TestParseJSONHeredoc."""
    children = parse_tree(
        '\nFROM alpine:3.6\n\nRUN ["whoami"]\nRUN ["<<EOF"]\nRUN ["<<\'EOF\'"]\n\t'
    ).root.children
    assert [child.heredocs for child in children[1:]] == [[], [], []]


def test_chomp() -> None:
    """TestHeredocChomp."""
    assert chomp_heredoc_content("\thello\n\tworld\n") == "hello\nworld\n"


@pytest.mark.parametrize(
    "word", ["<<EOF", "<<'EOF'", '<<"EOF"', "<<-EOF", "<<-'EOF'", '<<-"EOF"', '<<EO"F"', "<< EOF", "<<- EOF"]
)
def test_valid_heredoc_words(word: str) -> None:
    """TestParseHeredocHelpers: valid."""
    heredoc = parse_heredoc(word)
    assert heredoc is not None and heredoc.name == "EOF"


@pytest.mark.parametrize("word", ["<<'EOF", '<<"EOF', "<<EOF'", '<<EOF"'])
def test_invalid_heredoc_words(word: str) -> None:
    """TestParseHeredocHelpers: invalid (an unterminated quote)."""
    with pytest.raises(Exception, match="unexpected end of statement"):
        parse_heredoc(word)


@pytest.mark.parametrize("word", ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"])
def test_not_heredoc_words(word: str) -> None:
    """TestParseHeredocHelpers: not heredocs."""
    assert parse_heredoc(word) is None


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("RUN <<EOF", ["EOF"]),
        ("RUN <<-EOF", ["EOF"]),
        # Go's test only compares the names found; BuildKit's lexer splits "<<-" from "EOF"
        # here (only spaces right after "<<" stay in the word), so this line has none
        ("RUN <<- EOF", []),
        ("RUN << -EOF", ["-EOF"]),
        ("RUN <<'EOF'", ["EOF"]),
        ("RUN 4<<EOF", ["EOF"]),
        ("RUN <<EOF <<EOF2", ["EOF", "EOF2"]),
        ("RUN '<<EOF'", []),
        ('RUN "<<EOF"', []),
    ],
)
def test_heredocs_from_line(line: str, names: list[str]) -> None:
    """TestHeredocsFromLine."""
    assert [heredoc.name for heredoc in _heredocs_from_line(line)] == names


def test_heredoc_in_onbuild_and_not_in_other_instructions() -> None:
    children = parse_tree("FROM x\nONBUILD RUN <<EOF\nhi\nEOF\nUSER <<EOF\n").root.children
    assert children[1].heredocs == [h("EOF", "hi\n")]
    assert children[2].heredocs == []
