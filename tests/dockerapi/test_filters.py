"""Filters and labels: the query JSON both ways and the one label rule; container names."""

from __future__ import annotations

import json
from typing import Any

import pytest

from containerkit.dockerapi import filters_from_query, filters_to_query, label_matches, normalise
from containerkit.engine import _names
from containerkit.errors import InvalidArgument
from containerkit.spec import ContainerSpec, check_container_name


@pytest.mark.parametrize(
    ("filters", "wire"),
    [
        (None, None),
        ({}, None),
        ({"status": "running"}, {"status": ["running"]}),
        ({"label": ["a=1", "b"]}, {"label": ["a=1", "b"]}),
        ({"label": {"a=1": True, "b": False}}, {"label": ["a=1"]}),
        ({"dangling": True}, {"dangling": ["true"]}),
        ({"exited": 0}, {"exited": ["0"]}),
    ],
)
def test_filters_to_query_and_back(filters: Any, wire: dict[str, list[str]] | None) -> None:
    query = filters_to_query(filters)
    assert (json.loads(query) if query else None) == wire
    if query:
        assert filters_from_query(json.loads(query)) == wire


def test_filters_from_query_takes_the_old_form_and_refuses_others() -> None:
    assert filters_from_query({"label": {"a": True, "b": False}, "name": "x"}) == {
        "label": ["a"],
        "name": ["x"],
    }
    assert filters_from_query(None) == {}
    with pytest.raises(InvalidArgument, match="filters: expected a JSON object"):
        filters_from_query(["label"])
    with pytest.raises(InvalidArgument, match=r"filters\.label: expected an array of strings"):
        filters_from_query({"label": 5})


def test_normalise_refuses_unknown_keys() -> None:
    assert normalise({"name": "a"}, known={"name"}) == {"name": ["a"]}
    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        normalise({"colour": "red"}, known={"name"})


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ("a", True),
        ("a=1", True),
        ("a=2", False),
        ("c", False),
        ("b=", True),
        ("b=x", False),
        ("a=1=2", False),
    ],
)
def test_label_matches(wanted: str, expected: bool) -> None:
    assert label_matches({"a": "1", "b": ""}, wanted) is expected


@pytest.mark.parametrize("name", ["ab", "/ab", "web-1", "a.b_c", "0x"])
def test_container_names_dockerd_accepts(name: str) -> None:
    assert check_container_name(name) == name.lstrip("/") == _names.check(name)
    assert ContainerSpec(image="busybox", name=name).name == name


@pytest.mark.parametrize("name", ["a", "", "-x", "_x", "a b", "a/b", "//ab", "ä1"])
def test_container_names_dockerd_refuses(name: str) -> None:
    """One rule for the spec and the engine: what dockerd's RestrictedNamePattern refuses."""
    with pytest.raises(InvalidArgument, match="invalid container name"):
        check_container_name(name)
    with pytest.raises(InvalidArgument, match="invalid container name"):
        _names.check(name)
    with pytest.raises(InvalidArgument, match="invalid container name"):
        ContainerSpec(image="busybox", name=name)
