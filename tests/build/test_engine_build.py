"""engine.images.build: the classic builder's semantics, run for real (RUN steps are containers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.spec import BuildEvent

BASE = "example/busybox:latest"

pytestmark = pytest.mark.usefixtures("no_build_containers")


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _run(engine: ck.Engine, image: str, *command: str) -> str:
    container = engine.containers.run(image, list(command) if command else None, network="none")
    try:
        assert container.wait() == 0
        return container.logs().decode()
    finally:
        container.remove(force=True)


def _history(engine: ck.Engine, image_id: str) -> list[dict[str, object]]:
    record = engine.metadata.images.get(image_id)
    assert record is not None
    return list(json.loads(record.config_json)["history"])


def test_basic_build_runs_copies_and_sets_config(build_engine: ck.Engine, tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "Dockerfile": f"FROM {BASE}\n"
            "ARG NAME=world\n"
            'ENV GREETING="hello $NAME"\n'
            'RUN echo "$GREETING" > /greeting && echo out && echo err >&2\n'
            "COPY app/ /app/\n"
            "WORKDIR /app\n"
            'CMD ["cat", "/greeting"]\n',
            "app/x.txt": "x\n",
            "app/sub/y.txt": "y\n",
        },
    )
    events: list[BuildEvent] = []
    image = build_engine.images.build(tmp_path, tag="built/basic:1", progress=events.append)
    assert "built/basic:1" in image.tags
    assert image.config.cmd == ("cat", "/greeting")
    assert image.config.working_dir == "/app"
    assert "GREETING=hello world" in image.config.env
    assert _run(build_engine, "built/basic:1") == "hello world\n"
    assert _run(build_engine, "built/basic:1", "sh", "-c", "cat x.txt sub/y.txt; pwd") == "x\ny\n/app\n"
    steps = [e.text for e in events if e.kind == "step"]
    assert steps[0] == f"FROM {BASE}" and len(steps) == 7
    assert [e.step for e in events if e.kind == "step"] == list(range(1, 8))
    outputs = [(e.stream, e.text) for e in events if e.kind == "output"]
    assert ("stdout", "out\n") in outputs and ("stderr", "err\n") in outputs
    assert any(e.kind == "running" for e in events) and any(e.kind == "removed" for e in events)
    history = _history(build_engine, image.id)
    lines = [h["created_by"] for h in history[-6:]]
    assert lines[0] == "/bin/sh -c #(nop)  ARG NAME=world"
    assert lines[1] == "/bin/sh -c #(nop)  ENV GREETING=hello world"
    assert lines[2] == '|1 NAME=world /bin/sh -c echo "$GREETING" > /greeting && echo out && echo err >&2'
    assert str(lines[3]).startswith("/bin/sh -c #(nop) COPY dir:") and str(lines[3]).endswith(" in /app/ ")
    assert lines[4] == "/bin/sh -c #(nop) WORKDIR /app"
    assert lines[5] == '/bin/sh -c #(nop)  CMD ["cat" "/greeting"]'
    assert [bool(h.get("empty_layer")) for h in history[-6:]] == [True, True, False, False, True, True]

    # the same build again: every step from the cache, the same image
    again: list[BuildEvent] = []
    second = build_engine.images.build(tmp_path, tag="built/basic:1", progress=again.append)
    assert second.id == image.id
    assert sum(1 for e in again if e.kind == "cache") == 6
    assert not any(e.kind == "running" for e in again)
