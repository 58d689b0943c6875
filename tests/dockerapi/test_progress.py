"""docker's pull/push progress messages and registry shapes, both ways."""

from __future__ import annotations

import base64
import json

import pytest

from containerkit.dockerapi.progress import (
    error_message,
    human_size,
    progress_bar,
    progress_event,
    progress_message,
)
from containerkit.dockerapi.registry import auth_header, distribution_inspect, registry_data_from_wire
from containerkit.errors import InvalidArgument
from containerkit.spec import ProgressEvent, RegistryData


def test_downloading_line_is_dockerds() -> None:
    event = ProgressEvent(id="a3ed95caeb02", action="Downloading", current=1_500_000, total=3_000_000)
    message = progress_message(event)
    assert message["status"] == "Downloading"
    assert message["id"] == "a3ed95caeb02"
    assert message["progressDetail"] == {"current": 1_500_000, "total": 3_000_000}
    assert message["progress"] == "[" + "=" * 25 + ">" + " " * 25 + "]    1.5MB/3MB"
    assert progress_event(message) == event


def test_layer_step_without_bytes_has_empty_detail() -> None:
    message = progress_message(ProgressEvent(id="a3ed95caeb02", action="Pull complete"))
    assert message == {"status": "Pull complete", "progressDetail": {}, "id": "a3ed95caeb02"}
    assert progress_event(message) == ProgressEvent(id="a3ed95caeb02", action="Pull complete")


def test_image_level_lines() -> None:
    pulling = progress_message(ProgressEvent(id="", action="Pulling from team/app"), image_id="1.2")
    assert pulling == {"status": "Pulling from team/app", "id": "1.2"}
    # the tag comes back as the line's id, as the engine names it (docker prints "1.2: Pulling from")
    assert progress_event(pulling) == ProgressEvent(id="1.2", action="Pulling from team/app")
    # the engine may name the tag itself, as dockerd does
    assert progress_message(ProgressEvent(id="1.2", action="Pulling from team/app")) == {
        "status": "Pulling from team/app",
        "id": "1.2",
    }
    digest = progress_message(ProgressEvent(id="", action="Digest: sha256:" + "0" * 64), image_id="1.2")
    assert digest == {"status": "Digest: sha256:" + "0" * 64}


def test_what_is_no_progress_step() -> None:
    assert progress_event({"progressDetail": {}, "aux": {"Tag": "1"}}) is None
    assert progress_event(error_message("boom")) is None
    assert progress_event({"status": "Pushing", "progressDetail": {"current": True}}) == ProgressEvent(
        id="", action="Pushing"
    )


def test_error_message_has_both_fields() -> None:
    assert error_message("manifest unknown") == {
        "errorDetail": {"message": "manifest unknown"},
        "error": "manifest unknown",
    }
    assert error_message("denied", kind="unauthorized")["errorDetail"] == {
        "message": "denied",
        "kind": "unauthorized",
    }


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0B"), (999, "999B"), (1000, "1kB"), (1234567, "1.235MB"), (5 * 10**9, "5GB")],
)
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text


def test_progress_bar_caps_and_unknown_total() -> None:
    assert progress_bar(None, None) == ""
    assert progress_bar(2000, None) == "     2kB"
    assert progress_bar(10, 5).startswith("[" + "=" * 50 + ">] ")


def test_auth_header_is_base64url_json_without_empty_fields() -> None:
    header = auth_header(username="u", password="p?>", server="127.0.0.1:5000")
    decoded = json.loads(base64.urlsafe_b64decode(header))
    assert decoded == {"username": "u", "password": "p?>", "serveraddress": "127.0.0.1:5000"}
    assert auth_header() == "e30="


def test_distribution_document_round_trip() -> None:
    data = RegistryData(
        digest="sha256:" + "1" * 64,
        media_type="application/vnd.oci.image.index.v1+json",
        size=321,
        platforms=[
            {"architecture": "amd64", "os": "linux"},
            {"architecture": "arm", "os": "linux", "variant": "v7"},
        ],
    )
    document = distribution_inspect(data)
    assert document["Descriptor"] == {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": "sha256:" + "1" * 64,
        "size": 321,
    }
    assert registry_data_from_wire(json.loads(json.dumps(document))) == data


def test_distribution_document_without_digest_is_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"Descriptor\.digest"):
        registry_data_from_wire({"Descriptor": {}})
