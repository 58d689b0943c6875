"""Reference parsing matches docker's normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containerkit.errors import InvalidReference
from containerkit.images.reference import parse_reference, parse_repository

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "canonical", "familiar"),
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest", "busybox:latest"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("example/busybox", "docker.io/example/busybox:latest", "example/busybox:latest"),
        ("localhost:5000/x", "localhost:5000/x:latest", "localhost:5000/x:latest"),
        ("localhost/x:v1", "localhost/x:v1", "localhost/x:v1"),
        ("quay.io/a/b/c:1.0-rc_1", "quay.io/a/b/c:1.0-rc_1", "quay.io/a/b/c:1.0-rc_1"),
        (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", f"busybox@{DIGEST}"),
        (f"x:v1@{DIGEST}", f"docker.io/library/x:v1@{DIGEST}", f"x:v1@{DIGEST}"),
        ("127.0.0.1:5000/a__b-c.d:T_ag", "127.0.0.1:5000/a__b-c.d:T_ag", "127.0.0.1:5000/a__b-c.d:T_ag"),
    ],
)
def test_normalisation(text: str, canonical: str, familiar: str) -> None:
    ref = parse_reference(text)
    assert ref.canonical == canonical
    assert ref.familiar == familiar
    assert parse_reference(canonical) == ref
    assert parse_reference(familiar) == ref


def test_fields() -> None:
    ref = parse_reference(f"localhost:5000/team/app@{DIGEST}")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("localhost:5000", "team/app", None, DIGEST)
    assert ref.name == "localhost:5000/team/app"
    assert ref.with_tag("v2").canonical == "localhost:5000/team/app:v2"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Busybox",
        "busybox:bad/tag",
        "busybox:-x",
        "busybox:" + "a" * 129,
        "busybox@sha256:abc",
        "busybox@md5:" + "0" * 32,
        "a" * 64,
        "x//y",
        "/x",
        "x/",
        "bad..name",
        "foo@",
        ":tag",
        "name:",
        "example.com:abc/x",
    ],
)
def test_invalid_references_name_the_text(text: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    assert repr(text) in str(info.value) or text in str(info.value)


def test_repository_only() -> None:
    assert parse_repository("example/app").name == "docker.io/example/app"
    with pytest.raises(InvalidReference):
        parse_repository("example/app:v1")


_component = st.from_regex(r"[a-z0-9]{1,8}([._-][a-z0-9]{1,8})?", fullmatch=True)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@given(
    domain=st.sampled_from(["", "docker.io/", "localhost/", "localhost:5000/", "reg.example.com/"]),
    path=st.lists(_component, min_size=1, max_size=3),
    tag=st.one_of(st.none(), _tag),
)
def test_round_trip(domain: str, path: list[str], tag: str | None) -> None:
    text = domain + "/".join(path) + (f":{tag}" if tag else "")
    ref = parse_reference(text)
    assert ref.tag == (tag or "latest")
    assert parse_reference(ref.canonical) == ref
    assert parse_reference(ref.familiar) == ref
    assert ref.canonical.startswith(ref.domain + "/")
