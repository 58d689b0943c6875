"""engine.images.build: the classic builder's semantics, run for real (RUN steps are containers)."""

from __future__ import annotations

import http.server
import io
import json
import os
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import containerkit as ck
from containerkit.errors import BuildError
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


def test_copy_cache_follows_content_not_mtime(build_engine: ck.Engine, tmp_path: Path) -> None:
    _write(
        tmp_path,
        {"Dockerfile": f"FROM {BASE}\nCOPY src /src\nRUN cat /src/a.txt > /copy\n", "src/a.txt": "one\n"},
    )
    first = build_engine.images.build(tmp_path)
    # only the mtime changes: every step is still cached
    os.utime(tmp_path / "src" / "a.txt", (1_000_000, 1_000_000))
    events: list[BuildEvent] = []
    assert build_engine.images.build(tmp_path, progress=events.append).id == first.id
    assert sum(1 for e in events if e.kind == "cache") == 2
    # the content changes: the COPY and every step after it run again
    (tmp_path / "src" / "a.txt").write_text("two\n")
    events.clear()
    second = build_engine.images.build(tmp_path, progress=events.append)
    assert second.id != first.id
    assert not any(e.kind == "cache" for e in events)
    assert _run(build_engine, second.id, "cat", "/copy") == "two\n"
    # nocache runs everything again though nothing changed
    events.clear()
    build_engine.images.build(tmp_path, nocache=True, progress=events.append)
    assert not any(e.kind == "cache" for e in events) and any(e.kind == "running" for e in events)


def test_multistage_target_args_and_copy_from(build_engine: ck.Engine, tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "Dockerfile": "ARG BASE=" + BASE + "\n"
            "ARG VERSION=1.0\n"
            "FROM $BASE AS builder\n"
            "ARG VERSION\n"
            'RUN mkdir /out && echo "v$VERSION" > /out/version && echo "${UNSET:-fallback}" > /out/f\n'
            "FROM $BASE AS final\n"
            "COPY --from=builder /out/ /opt/\n"
            'CMD ["cat", "/opt/version"]\n'
            "FROM final AS extra\n"
            "RUN echo never > /never\n",
        },
    )
    image = build_engine.images.build(tmp_path, target="final", buildargs={"VERSION": "2.5"})
    assert _run(build_engine, image.id) == "v2.5\n"
    assert _run(build_engine, image.id, "cat", "/opt/f") == "fallback\n"
    assert _run(build_engine, image.id, "sh", "-c", "test ! -e /never && echo absent") == "absent\n"


def test_unknown_target_and_missing_dockerfile_are_errors(build_engine: ck.Engine, tmp_path: Path) -> None:
    with pytest.raises(ck.NotFound, match="Cannot locate specified Dockerfile: Dockerfile"):
        build_engine.images.build(tmp_path)
    _write(tmp_path, {"Dockerfile": f"FROM {BASE}\n"})
    with pytest.raises(ck.InvalidArgument, match="failed to reach build target nope"):
        build_engine.images.build(tmp_path, target="nope")


def test_failed_run_leaves_nothing(build_engine: ck.Engine, tmp_path: Path) -> None:
    _write(tmp_path, {"Dockerfile": f"FROM {BASE}\nENV X=1\nRUN echo partial > /p && false\n"})
    images_before = {i.id for i in build_engine.images.list(all=True)}
    snapshots_before = set(build_engine.snapshots.list_snapshots())
    with pytest.raises(
        BuildError, match=r"The command '/bin/sh -c echo partial > /p && false' returned a non-zero code: 1"
    ) as caught:
        build_engine.images.build(tmp_path, tag="never/made:1")
    assert caught.value.exit_code == 1
    assert build_engine.containers.list(all=True) == []
    assert set(build_engine.snapshots.list_snapshots()) == snapshots_before
    # the ENV step before it was kept (cached), nothing else
    new = {i.id for i in build_engine.images.list(all=True)} - images_before
    assert all(build_engine.images.get(i).layers == build_engine.images.get(BASE).layers for i in new)
    with pytest.raises(ck.NotFound):
        build_engine.images.get("never/made:1")


def test_instructions_config_and_history(build_engine: ck.Engine, tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "Dockerfile": f"FROM {BASE}\n"
            'SHELL ["/bin/sh", "-ec"]\n'
            "RUN echo shell-ok > /shell\n"
            "USER app\n"
            "COPY --chown=app:app owned.txt /home/owned.txt\n"
            "COPY --chmod=0751 tool.sh /usr/local/bin/\n"
            "USER root\n"
            "VOLUME /data\n"
            "STOPSIGNAL SIGTERM\n"
            "EXPOSE 80 53/udp\n"
            "HEALTHCHECK --interval=5s --retries=2 CMD true\n"
            "ONBUILD RUN echo triggered > /onbuild\n"
            "MAINTAINER someone\n"
            'CMD ["echo", "from-cmd"]\n',
            "owned.txt": "mine\n",
            "tool.sh": "#!/bin/sh\necho tool\n",
        },
    )
    image = build_engine.images.build(tmp_path, tag="built/config:1", labels={"from": "labels"})
    cfg = image.config
    assert cfg.shell == ("/bin/sh", "-ec")
    assert cfg.user == "root"
    assert cfg.volumes == ("/data",)
    assert cfg.stop_signal == "SIGTERM"
    assert cfg.exposed_ports == ("53/udp", "80/tcp")
    assert cfg.healthcheck is not None and cfg.healthcheck.interval == 5 and cfg.healthcheck.retries == 2
    assert cfg.on_build == ("RUN echo triggered > /onbuild",)
    assert dict(cfg.labels) == {"from": "labels"}
    assert _run(
        build_engine, image.id, "stat", "-c", "%U %G %a", "/home/owned.txt", "/usr/local/bin/tool.sh"
    ) == ("app app 644\nroot root 751\n")
    lines = [h["created_by"] for h in _history(build_engine, image.id)]
    assert "/bin/sh -ec #(nop)  SHELL [/bin/sh -ec]" in lines  # dockerd names the new shell
    assert "/bin/sh -ec echo shell-ok > /shell" in lines
    assert "/bin/sh -ec #(nop)  VOLUME [/data]" in lines
    assert "/bin/sh -ec #(nop)  EXPOSE 53/udp 80" in lines  # sorted by the parser, as BuildKit

    # ONBUILD runs in a build FROM it; ENTRYPOINT drops the CMD it inherited
    child = tmp_path / "child"
    _write(child, {"Dockerfile": 'FROM built/config:1\nENTRYPOINT ["cat"]\n'})
    derived = build_engine.images.build(child)
    assert derived.config.cmd is None and derived.config.entrypoint == ("cat",)
    assert derived.config.on_build == ()
    assert _run(build_engine, derived.id, "/onbuild") == "triggered\n"
    _write(child, {"Dockerfile": 'FROM built/config:1\nCMD ["/etc/hostname"]\nENTRYPOINT ["ls"]\n'})
    assert build_engine.images.build(child).config.cmd == ("/etc/hostname",)


def test_heredocs_for_run_and_copy(build_engine: ck.Engine, tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "Dockerfile": f"FROM {BASE}\n"
            "ENV WHO=heredoc\n"
            "RUN <<EOF\n"
            "echo line one > /script-out\n"
            "echo $WHO >> /script-out\n"
            "EOF\n"
            "COPY <<EOT /etc/greeting\n"
            "hello $WHO\n"
            "EOT\n"
            "RUN cat <<EOF > /from-cat\n"
            "cat-data\n"
            "EOF\n",
        },
    )
    image = build_engine.images.build(tmp_path)
    assert _run(build_engine, image.id, "cat", "/script-out", "/etc/greeting", "/from-cat") == (
        "line one\nheredoc\nhello heredoc\ncat-data\n"
    )


def test_add_local_tar_is_extracted_and_dockerignore_applies(build_engine: ck.Engine, tmp_path: Path) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = b"inside the tar\n"
        info = tarfile.TarInfo("pkg/readme")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (tmp_path / "bundle.tar.gz").write_bytes(archive.getvalue())
    _write(
        tmp_path,
        {
            "Dockerfile": f"FROM {BASE}\nADD bundle.tar.gz /opt/\nCOPY . /ctx/\n",
            ".dockerignore": "*.md\n!keep.md\nsecret/\n",
            "notes.md": "ignored\n",
            "keep.md": "kept\n",
            "sub/deep.md": "not anchored: kept\n",
            "secret/key": "never\n",
        },
    )
    image = build_engine.images.build(tmp_path)
    assert _run(build_engine, image.id, "cat", "/opt/pkg/readme") == "inside the tar\n"
    listing = _run(build_engine, image.id, "sh", "-c", "cd /ctx && find . -type f | sort")
    assert listing.split() == [
        "./.dockerignore",
        "./Dockerfile",
        "./bundle.tar.gz",
        "./keep.md",
        "./sub/deep.md",
    ]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"downloaded content\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_add_url_keeps_last_modified_and_is_not_extracted(
    build_engine: ck.Engine, tmp_path: Path, http_url: str
) -> None:
    _write(tmp_path, {"Dockerfile": f"FROM {BASE}\nADD {http_url}/files/remote.txt /dl/\n"})
    image = build_engine.images.build(tmp_path)
    out = _run(build_engine, image.id, "sh", "-c", "cat /dl/remote.txt; stat -c '%a %Y' /dl/remote.txt")
    assert out == "downloaded content\n600 1445412480\n"


def test_intermediate_images_hidden_kept_and_pruned(build_engine: ck.Engine, tmp_path: Path) -> None:
    _write(tmp_path, {"Dockerfile": f"FROM {BASE}\nENV A=1\nRUN echo x > /x\nENV B=2\n"})
    events: list[BuildEvent] = []
    image = build_engine.images.build(tmp_path, tag="prune/me:1", nocache=True, progress=events.append)
    steps = {e.id for e in events if e.kind == "image"} - {image.id, build_engine.images.get(BASE).id}
    assert len(steps) == 2  # the ENV and RUN steps under the result
    listed = {i.id for i in build_engine.images.list()}
    assert image.id in listed and not steps & listed
    assert steps <= {i.id for i in build_engine.images.list(all=True)}
    # build steps under other images are not dangling: image prune keeps them
    assert not set(build_engine.images.prune()) & steps
    deleted = build_engine.images.prune_build_cache()
    assert steps <= set(deleted) and image.id not in deleted
    assert build_engine.images.get("prune/me:1").id == image.id
    events.clear()
    build_engine.images.build(tmp_path, tag="prune/me:1", progress=events.append)
    assert not any(e.kind == "cache" for e in events)


def test_cache_from_uses_only_the_given_images_history(build_engine: ck.Engine, tmp_path: Path) -> None:
    _write(tmp_path, {"Dockerfile": f'FROM {BASE}\nENV STAGE=one\nRUN echo cached > /c\nCMD ["cat", "/c"]\n'})
    source = build_engine.images.build(tmp_path, tag="cachefrom/source:1")
    # the local cache alone would hit; with cache_from naming an unrelated image it must not
    events: list[BuildEvent] = []
    build_engine.images.build(tmp_path, cache_from=[BASE], progress=events.append)
    assert not any(e.kind == "cache" for e in events)
    # forget the local cache: cache_from the image still gives every step, from its history
    build_engine.images.prune_build_cache()
    events.clear()
    again = build_engine.images.build(tmp_path, cache_from=["cachefrom/source:1"], progress=events.append)
    assert sum(1 for e in events if e.kind == "cache") == 3
    assert not any(e.kind == "running" for e in events)
    assert again.layers == source.layers and again.config == source.config
    assert _run(build_engine, again.id) == "cached\n"


def test_from_an_image_missing_here_pulls_it(build_engine: ck.Engine, tmp_path: Path, registry: Any) -> None:
    remote = f"{registry.host}/base/busybox:1"
    build_engine.images.tag(BASE, remote)
    build_engine.images.push(remote)
    build_engine.images.remove(remote)
    _write(tmp_path, {"Dockerfile": f"FROM {remote}\nRUN echo on-pulled > /p\n"})
    image = build_engine.images.build(tmp_path)
    assert build_engine.images.get(remote).layers == build_engine.images.get(BASE).layers
    assert _run(build_engine, image.id, "cat", "/p") == "on-pulled\n"
    # pull=True asks the registry again even though the image is here now
    events: list[BuildEvent] = []
    assert build_engine.images.build(tmp_path, pull=True, progress=events.append).id == image.id
    registry_gone = f"{registry.host}/base/absent:1"
    _write(tmp_path, {"Dockerfile": f"FROM {registry_gone}\n"})
    with pytest.raises(ck.NotFound):
        build_engine.images.build(tmp_path)


def test_run_network_modes_and_extra_hosts(build_engine: ck.Engine, tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "Dockerfile": f"FROM {BASE}\n"
            "RUN grep -c . /proc/net/dev > /ifaces; grep buildhost /etc/hosts > /h\n"
        },
    )
    image = build_engine.images.build(tmp_path, network="none", extra_hosts={"buildhost": "10.1.2.3"})
    # only lo (and the two header lines) in a network-less RUN; the extra host was there
    assert _run(build_engine, image.id, "cat", "/ifaces") == "3\n"
    assert _run(build_engine, image.id, "cat", "/h").split() == ["10.1.2.3", "buildhost"]
    with pytest.raises(ck.InvalidArgument, match="network"):
        build_engine.images.build(tmp_path, network="bogus")


def test_copy_of_several_files_needs_a_directory_destination(build_engine: ck.Engine, tmp_path: Path) -> None:
    _write(tmp_path, {"Dockerfile": f"FROM {BASE}\nCOPY *.txt /dest\n", "a.txt": "a", "b.txt": "b"})
    with pytest.raises(BuildError, match="the destination must be a directory and end with a /"):
        build_engine.images.build(tmp_path)
    _write(tmp_path, {"Dockerfile": f"FROM {BASE}\nCOPY *.txt /dest/\nCOPY missing.txt /x\n"})
    with pytest.raises(ck.NotFound, match=r"file not found in build context or excluded by \.dockerignore"):
        build_engine.images.build(tmp_path)
