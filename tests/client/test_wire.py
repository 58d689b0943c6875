"""The client's decoders and model translation, on bytes and dicts (no daemon needed)."""

from __future__ import annotations

import datetime as dt
import json
import struct
from typing import Any

import pytest

import containerkit.errors as ck_errors
from containerkit.client import _frames, _wire
from containerkit.spec import ContainerSpec, ImageConfig, Mount, PortBinding, Resources


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def test_demux_reassembles_frames_split_anywhere() -> None:
    data = frame(1, b"out1\n") + frame(2, b"err\n") + frame(1, b"out2\n")
    for cut in range(len(data) + 1):
        chunks = [data[:cut], data[cut:]]
        assert list(_frames.demux(chunks)) == [
            ("stdout", b"out1\n"),
            ("stderr", b"err\n"),
            ("stdout", b"out2\n"),
        ]
    assert list(_frames.demux(bytes([b]) for b in data)) == list(_frames.demux([data]))


def test_demux_raises_on_in_band_error_and_truncation() -> None:
    with pytest.raises(ck_errors.RuntimeFailure, match="boom"):
        list(_frames.demux([frame(3, b"boom")]))
    with pytest.raises(ck_errors.DaemonUnavailable, match="inside a frame"):
        list(_frames.demux([frame(1, b"abc")[:-1]]))


def test_json_objects_across_chunks_and_characters() -> None:
    text = json.dumps({"status": "é"}).encode() + b"\r\n" + json.dumps({"id": 2}).encode()
    for cut in range(len(text) + 1):
        assert list(_frames.json_objects([text[:cut], text[cut:]])) == [{"status": "é"}, {"id": 2}]


def test_create_body_round_trips_through_inspect_shape() -> None:
    ports: dict[str | int, Any] = {"80/tcp": 8080, "53/udp": None}
    spec = ContainerSpec(
        image="example/busybox:latest",
        command=["sh", "-c", "echo hi"],
        entrypoint=[],
        name="web",
        env={"A": "1"},
        workdir="/tmp",
        user="app",
        hostname="box",
        labels={"suite": "wire"},
        mounts=[
            Mount(type="bind", source="/srv", target="/data", read_only=True, options=["rslave"]),
            Mount(type="volume", source="cache", target="/cache"),
            Mount(type="tmpfs", target="/scratch", options=["size=64m", "mode=1777"]),
        ],
        resources=Resources(memory="64m", cpus=0.5, pids=50),
        tty=True,
        read_only=True,
        cap_add=["SYS_ADMIN"],
        cap_drop=["NET_RAW"],
        no_new_privileges=True,
        init=True,
        stop_signal="SIGINT",
        stop_timeout=3,
        network="backend",
        ports=ports,
        aliases=["api"],
        dns=["10.0.0.2"],
        extra_hosts={"db": "10.0.0.3"},
    )
    body = _wire.create_body(spec)
    assert body["Entrypoint"] == [] and body["Cmd"] == ["sh", "-c", "echo hi"]
    assert body["Env"] == ["A=1"]
    host = body["HostConfig"]
    assert host["Tmpfs"] == {"/scratch": "size=64m,mode=1777"}
    assert host["PortBindings"]["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "8080"}]
    assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 64 << 20
    assert "Runtime" not in host  # the daemon's default; dockerd has no "builtin"
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"backend": {"Aliases": ["api"]}}}
    inspect = {
        "Name": "/web",
        "Config": {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")},
        "HostConfig": host,
        "NetworkSettings": {"Networks": {"backend": {"Aliases": ["api"]}}},
    }
    assert _wire.spec_from_inspect(inspect) == spec


def test_split_tag_and_filters() -> None:
    assert _wire.split_tag("localhost:5000/repo:1.0") == ("localhost:5000/repo", "1.0")
    assert _wire.split_tag("localhost:5000/repo") == ("localhost:5000/repo", "")
    with pytest.raises(ck_errors.InvalidReference):
        _wire.split_tag("repo@sha256:" + "0" * 64)
    assert json.loads(_wire.filters_param({"label": "a=1", "dangling": True, "id": ["x"]}) or "") == {
        "label": ["a=1"],
        "dangling": ["true"],
        "id": ["x"],
    }
    assert _wire.filters_param({"label": {"a=1": True, "b": False}}) == '{"label": ["a=1"]}'
    assert _wire.filters_param(None) is None


def test_times() -> None:
    assert _wire.parse_time("0001-01-01T00:00:00Z") is None
    parsed = _wire.parse_time("2024-05-01T12:00:00.123456789Z")
    assert parsed == dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
    assert _wire.parse_time("2024-05-01T14:00:00+02:00") == dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    assert _wire.parse_time(0) == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def test_stats_limits() -> None:
    data = {
        "read": "2024-05-01T12:00:00Z",
        "memory_stats": {"usage": 10, "limit": 8 << 30},
        "cpu_stats": {"cpu_usage": {"total_usage": 7}},
        "pids_stats": {"current": 1, "limit": 50},
    }
    stats = _wire.stats_from_wire(data, host_memory=8 << 30)
    assert stats.memory_limit is None  # the host's RAM: no limit was set
    assert (stats.memory_usage, stats.cpu_usage_ns, stats.pids, stats.pids_limit) == (10, 7, 1, 50)
    assert _wire.stats_from_wire(data, host_memory=16 << 30).memory_limit == 8 << 30


def test_import_changes() -> None:
    config = _wire.image_config({"Cmd": ["sh"], "Env": ["A=b c"], "ExposedPorts": {"80/tcp": {}}})
    assert config == ImageConfig(cmd=["sh"], env=["A=b c"], exposed_ports=["80/tcp"])
    assert _wire.import_changes(config) == ['CMD ["sh"]', "ENV A='b c'", "EXPOSE 80/tcp"]
    assert ImageConfig.from_changes(_wire.import_changes(config)) == config  # what the daemon reads
    assert _wire.image_config({"cmd": ["true"]}).cmd == ("true",)


def test_port_binding_defaults() -> None:
    assert _wire.create_body(ContainerSpec(image="x", ports=[PortBinding(container_port=80)]))["HostConfig"][
        "PortBindings"
    ] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": ""}]}
