"""The Docker Engine API's JSON, both ways, in one place: create bodies <-> ``ContainerSpec``,
inspect and list shapes for containers, images, volumes and networks, filters and labels.

Pure functions over ``containerkit.spec`` models, no I/O: the daemon gathers engine state and
calls them, the client reads the daemon's answers back through them, the CLI prints the same
documents the daemon serves. Imports only ``spec`` and ``errors`` (``tests/test_layers.py``).
"""

from __future__ import annotations

from containerkit.dockerapi.containers import (
    ContainerView,
    container_inspect,
    container_summary,
    endpoint_from_wire,
    exec_inspect,
    spec_from_inspect,
)
from containerkit.dockerapi.create import from_create_body, to_create_body
from containerkit.dockerapi.filters import filters_from_query, filters_to_query, label_matches, normalise
from containerkit.dockerapi.images import image_from_wire, image_inspect, image_summary
from containerkit.dockerapi.resources import network_inspect, volume_from_wire, volume_json
from containerkit.dockerapi.times import human_status, parse_time, rfc3339

__all__ = [
    "ContainerView",
    "container_inspect",
    "container_summary",
    "endpoint_from_wire",
    "exec_inspect",
    "filters_from_query",
    "filters_to_query",
    "from_create_body",
    "human_status",
    "image_from_wire",
    "image_inspect",
    "image_summary",
    "label_matches",
    "network_inspect",
    "normalise",
    "parse_time",
    "rfc3339",
    "spec_from_inspect",
    "to_create_body",
    "volume_from_wire",
    "volume_json",
]
