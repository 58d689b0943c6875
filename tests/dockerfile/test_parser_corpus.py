"""BuildKit's parser corpus: every testfile parses to its ``result`` dump, every negative one fails.

The harness is BuildKit's ``frontend/dockerfile/parser/parser_test.go`` (TestParseCases,
TestParseErrorCases, TestParseIncludesLineNumbers); the files are vendored unmodified in
corpus/parser (see corpus/NOTICE). There are no known differences.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from containerkit.dockerfile import DockerfileSyntaxError, parse
from containerkit.dockerfile.parser import parse_tree

CORPUS = Path(__file__).parent / "corpus" / "parser"
POSITIVE = sorted(p.name for p in (CORPUS / "testfiles").iterdir())
NEGATIVE = sorted(p.name for p in (CORPUS / "testfiles-negative").iterdir())


def test_the_corpus_is_all_there() -> None:
    # BuildKit 73ed6825 has 33 positive and 4 negative cases: a lost file must not pass silently
    assert len(POSITIVE) == 33
    assert len(NEGATIVE) == 4


@pytest.mark.parametrize("case", POSITIVE)
def test_testfile_dumps_as_result(case: str) -> None:
    source = (CORPUS / "testfiles" / case / "Dockerfile").read_bytes()
    expected = (CORPUS / "testfiles" / case / "result").read_text(encoding="utf-8")
    assert parse_tree(source).root.dump() + "\n" == expected


@pytest.mark.parametrize("case", NEGATIVE)
def test_negative_testfile_fails(case: str) -> None:
    with pytest.raises(DockerfileSyntaxError, match=r"^dockerfile parse error on line \d+: "):
        parse_tree((CORPUS / "testfiles-negative" / case / "Dockerfile").read_bytes())


def test_negative_cases_give_buildkits_reasons() -> None:
    reasons = {}
    for case in NEGATIVE:
        with pytest.raises(DockerfileSyntaxError) as caught:
            parse((CORPUS / "testfiles-negative" / case / "Dockerfile").read_bytes())
        reasons[case] = caught.value.reason
    assert reasons == {
        "empty_dockerfile": "file with no instructions",
        "env_no_value": "ENV must have two arguments",
        "only_comments": "file with no instructions",
        "shykes-nested-json": "when using JSON array syntax, arrays must be comprised of strings only",
    }


def test_line_numbers_as_buildkit_records_them() -> None:
    tree = parse_tree((CORPUS / "testfile-line" / "Dockerfile").read_bytes()).root
    assert (tree.start_line, tree.end_line) == (5, 31)
    assert [(child.start_line, child.end_line) for child in tree.children] == [(5, 5), (11, 12), (17, 31)]


@pytest.mark.parametrize("case", POSITIVE)
def test_typed_parse_of_the_corpus_agrees_with_the_tree(case: str) -> None:
    """Every testfile that BuildKit's instruction parser accepts also gives typed instructions.

    Some testfiles hold what BuildKit's instruction layer refuses (they test the syntax
    layer only): those fail with BuildKit's reason on the first offending line."""
    source = (CORPUS / "testfiles" / case / "Dockerfile").read_bytes()
    no_from = "line 1: no build stage in current context"
    refused = {
        "flags": "line 3: unknown flag: --user",
        "health": "line 4: HEALTHCHECK requires at least one argument",
        "json": no_from,
        "jeztah-invalid-json-json-inside-string": no_from,
        "jeztah-invalid-json-json-inside-string-double": no_from,
        "jeztah-invalid-json-single-quotes": no_from,
        "jeztah-invalid-json-unterminated-bracket": no_from,
        "jeztah-invalid-json-unterminated-string": no_from,
    }
    if case in refused:
        with pytest.raises(DockerfileSyntaxError) as caught:
            parse(source)
        assert str(caught.value) == f"dockerfile parse error on {refused[case]}"
        return
    dockerfile = parse(source)
    assert dockerfile.dump() + "\n" == (CORPUS / "testfiles" / case / "result").read_text(encoding="utf-8")
    count = len(dockerfile.global_args) + sum(1 + len(stage.instructions) for stage in dockerfile.stages)
    assert count == len(parse_tree(source).root.children)
