"""``.dockerignore``: moby/patternmatcher and its ignorefile reader, and the context walk.

The vendored BuildKit tree has patternmatcher's source but not its tests, so the cases are
ported from moby/patternmatcher's ``patternmatcher_test.go`` (TestMatches' ``matchesTests``
and ``multiPatternTests``, the TestPatternMatches*/TestExclusionPattern*/TestCleanPatterns*
functions) and ``ignorefile/ignorefile_test.go`` (TestReadAll), as each comment says; the
anchoring cases are from Docker's .dockerignore documentation and BuildKit's
frontend/dockerfile/dockerfile_dockerignore_test.go.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from containerkit.dockerfile import DockerIgnore
from containerkit.dockerfile.ignore import clean, read_patterns
from containerkit.errors import InvalidArgument

WHEEL = "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"

# patternmatcher_test.go, TestMatches: matchesTests (pattern, path, matches)
MATCHES_TESTS = [
    ("**", "file", True),
    ("**", "file/", True),
    ("**/", "file", True),
    ("**/", "file/", True),
    ("**", "/", True),
    ("**/", "/", True),
    ("**", "dir/file", True),
    ("**/", "dir/file", True),
    ("**", "dir/file/", True),
    ("**/", "dir/file/", True),
    ("**/**", "dir/file", True),
    ("**/**", "dir/file/", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/file/", True),
    ("dir/**", "dir/dir2/file", True),
    ("dir/**", "dir/dir2/file/", True),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/*", "dir/dir2/file/", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file/", True),
    ("**file", "file", True),
    ("**file", "dir/file", True),
    ("**/file", "dir/file", True),
    ("**file", "dir/dir/file", True),
    ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("a\\\\", "a\\", True),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def", True),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    (WHEEL, WHEEL, True),
    ("dist/*.whl", WHEEL, True),
]

# patternmatcher_test.go, TestMatches: multiPatternTests (patterns, path, matches)
MULTI_PATTERN_TESTS = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!" + WHEEL], WHEEL, False),
    (["**", "!dist/*.whl"], WHEEL, False),
]


@pytest.mark.parametrize(("pattern", "path", "matches"), MATCHES_TESTS)
def test_patternmatcher_matches(pattern: str, path: str, matches: bool) -> None:
    assert DockerIgnore.from_patterns([pattern]).matches(path) is matches


@pytest.mark.parametrize(("patterns", "path", "matches"), MULTI_PATTERN_TESTS)
def test_patternmatcher_multi_pattern(patterns: list[str], path: str, matches: bool) -> None:
    assert DockerIgnore.from_patterns(patterns).matches(path) is matches


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        (["*"], "fileutils.go", True),  # TestWildcardMatches
        (["*.go"], "fileutils.go", True),  # TestPatternMatches
        (["!fileutils.go"], "fileutils.go", False),  # TestExclusionPatternMatchesPatternBeforeAFileName
        (["*.go", "!fileutils.go"], "fileutils.go", False),  # ...PatternAfterAFileName
        (["docs", "!docs/README.md"], "docs/README.md", False),  # TestPatternMatchesFolderExclusions
        (["docs/", "!docs/README.md"], "docs/README.md", False),  # ...FolderWithSlashExclusions
        (["docs/*", "!docs/README.md"], "docs/README.md", False),  # ...FolderWildcardExclusions
        (["docs", "!docs/README.md"], "docs/other.md", True),
        (["docs", "!docs/README.md"], "docs", True),
    ],
)
def test_patternmatcher_exclusion_functions(patterns: list[str], path: str, excluded: bool) -> None:
    assert DockerIgnore.from_patterns(patterns).excluded(path) is excluded


def test_clean_patterns() -> None:
    """TestCleanPatterns*: blanks dropped, spaces trimmed, ``!`` marks an exception."""
    ignore = DockerIgnore.from_patterns(["docs", "config", ""])
    assert [p.text for p in ignore.patterns] == ["docs", "config"]
    assert not ignore.has_exceptions
    assert DockerIgnore.from_patterns(["docs", "  !docs/README.md"]).has_exceptions
    trailing = DockerIgnore.from_patterns(["docs", "!docs/README.md  "])
    assert [(p.text, p.exclusion) for p in trailing.patterns] == [("docs", False), ("docs/README.md", True)]


def test_single_exclamation_is_an_error() -> None:
    """TestCleanPatternsErrorSingleException / TestSingleExclamationError."""
    with pytest.raises(InvalidArgument, match='illegal exclusion pattern: "!"'):
        DockerIgnore.from_patterns(["!"])


@pytest.mark.parametrize("pattern", ["[", "a[", "[^", "\\", "[]a]", "[x-]"])
def test_malformed_pattern_is_refused(pattern: str) -> None:
    """TestMatchesWithMalformedPatterns: New checks each pattern with filepath.Match."""
    with pytest.raises(InvalidArgument, match="syntax error in pattern"):
        DockerIgnore.from_patterns([pattern])


def test_read_all() -> None:
    """ignorefile_test.go TestReadAll: comments, blanks, leading ``/`` and spaces after ``!``."""
    content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! \n"
    assert read_patterns(content) == [
        "test1",
        "test2",
        "a/file/here",
        "lastfile",
        "!inverted/abs/path",
        "!",
        "!",
    ]


def test_read_all_strips_bom_crlf_and_cleans() -> None:
    assert read_patterns("\ufeff./a/../b\r\n  c/  \r\n/\n#x\n") == ["b", "c", "/"]


def test_patterns_are_anchored_at_the_context_root() -> None:
    """Docker's documentation: ``*.md`` is root-level only, ``*/temp*`` one level down,
    ``**/*.go`` any depth; the gitignore rules (``pathspec``) would match deeper too."""
    ignore = DockerIgnore.from_text("*.md\n*/temp*\n*/*/temp*\ntemp?\n**/*.go\n")
    assert ignore.excluded("README.md")
    assert not ignore.excluded("docs/README.md")
    assert ignore.excluded("somedir/temporary.txt")
    assert ignore.excluded("somedir/subdir/temporary.txt")
    assert not ignore.excluded("temporary.txt")
    assert ignore.excluded("tempa")
    assert not ignore.excluded("tempab")
    assert ignore.excluded("a/b/c/main.go")
    assert ignore.excluded("main.go")


def test_last_match_wins() -> None:
    """Docker's documentation: the exception list order decides."""
    assert not DockerIgnore.from_text("*.md\n!README*.md\n").excluded("README-secret.md")
    assert DockerIgnore.from_text("*.md\n!README*.md\nREADME-secret.md\n").excluded("README-secret.md")
    assert not DockerIgnore.from_text("*.md\nREADME-secret.md\n!README*.md\n").excluded("README-secret.md")


def test_buildkit_dockerignore_case() -> None:
    """dockerfile_dockerignore_test.go testDockerignore: ``ba*`` with ``!bay``."""
    ignore = DockerIgnore.from_text("\nba*\nDockerfile\n!bay\n.dockerignore\n")
    kept = [
        name
        for name in ("foo", "bar", "baz", "bay", "Dockerfile", ".dockerignore")
        if not ignore.excluded(name)
    ]
    assert kept == ["foo", "bay"]


def test_leading_slash_and_dot_slash_are_the_same_path() -> None:
    ignore = DockerIgnore.from_text("/a/b\n./c\n")
    assert ignore.excluded("a/b/x")
    assert ignore.excluded("/a/b")
    assert ignore.excluded("./c")
    assert not ignore.excluded(".")
    assert not ignore.excluded("")


def test_character_class_negation_is_caret_not_bang() -> None:
    """patternmatcher hands ``[...]`` to Go's regexp: ``[!a]`` is a class of ``!`` and ``a``."""
    ignore = DockerIgnore.from_text("[!a]*\n")
    assert ignore.excluded("abc")
    assert ignore.excluded("!x")
    assert not ignore.excluded("bcd")
    assert DockerIgnore.from_text("[^a]*\n").excluded("bcd")


def test_clean_is_go_filepath_clean() -> None:
    cases = {
        "": ".",
        "a//b/": "a/b",
        "./a": "a",
        "a/../..": "..",
        "/../a": "/a",
        "//a": "/a",
        "a/./b/..": "a",
    }
    assert {path: clean(path) for path in cases} == cases


@pytest.fixture
def context(tmp_path: Path) -> Path:
    for name in (
        "Dockerfile",
        "main.go",
        "README.md",
        "docs/guide.md",
        "docs/keep/important.txt",
        "node_modules/a/index.js",
        "node_modules/b/index.js",
        "build/out.bin",
        "build/keep.txt",
    ):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    return tmp_path


def test_walk_lists_what_is_not_excluded(context: Path) -> None:
    ignore = DockerIgnore.from_text("node_modules\n*.md\nbuild\n!build/keep.txt\n")
    assert list(ignore.walk(context)) == [
        "Dockerfile",
        "build",
        "build/keep.txt",
        "docs",
        "docs/guide.md",
        "docs/keep",
        "docs/keep/important.txt",
        "main.go",
    ]


def test_walk_agrees_with_excluded(context: Path) -> None:
    ignore = DockerIgnore.from_text("docs\n!docs/keep\n**/index.js\n!node_modules/b/*\n")
    walked = set(ignore.walk(context))
    every = {
        str(path.relative_to(context)) for path in context.rglob("*")
    }  # every file and directory of the context
    included_files = {p for p in every if (context / p).is_file() and not ignore.excluded(p)}
    assert included_files == {p for p in walked if (context / p).is_file()}
    assert "node_modules/b/index.js" in walked
    assert "docs/guide.md" not in walked


def test_walk_does_not_enter_an_excluded_directory(context: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An excluded directory that no exception reaches into is not even listed (fsutil's SkipDir)."""
    scanned: list[str] = []
    real_scandir = os.scandir

    def recording_scandir(path: str) -> object:
        scanned.append(os.path.relpath(path, context))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", recording_scandir)
    ignore = DockerIgnore.from_text("node_modules\ndocs\n!docs/keep\n")
    assert "node_modules/a/index.js" not in list(ignore.walk(context))
    assert not any(path.startswith("node_modules") for path in scanned)
    assert "docs" in scanned  # an exception names something inside docs/


def test_no_dockerignore_file_excludes_nothing(tmp_path: Path) -> None:
    assert DockerIgnore.from_file(tmp_path / ".dockerignore").patterns == ()
