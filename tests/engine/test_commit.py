"""docker diff / commit / export / history on the in-process engine, against the real kernel
(overlay snapshots, a running container frozen by its cgroup) and the engine's stores."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.engine.commit_config import apply_changes

from .conftest import IMAGE

ANON = ck.Mount(type="volume", target="/data")
"""An anonymous volume: the engine makes its mount point in the rootfs."""

SCRIPT = (
    "echo hi > /tmp/x; rm /bin/ls; mkdir -p /newdir/sub; echo more >> /etc/passwd; "
    "rm -rf /home; mkdir /home; touch /home/y"
)


@pytest.fixture
def made(engine: ck.Engine) -> Iterator[list[str]]:
    """Image ids a test made; removed afterwards (with their tags)."""
    ids: list[str] = []
    yield ids
    for image_id in reversed(ids):
        with contextlib.suppress(ck.NotFound):
            engine.images.remove(image_id, force=True)


@pytest.fixture
def changed(engine: ck.Engine) -> Iterator[ck.Container]:
    """An exited container that added, changed and deleted files, with a volume mounted."""
    container = engine.containers.run(IMAGE, ["sh", "-c", SCRIPT], mounts=[ANON])
    assert container.wait(timeout=30) == 0
    yield container
    container.remove(force=True, volumes=True)


def _layer_names(engine: ck.Engine, image: ck.Image) -> list[str]:
    out = io.BytesIO()
    engine.images.write_layer(image.id, -1, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        return tar.getnames()


def test_diff_lists_docker_changes_in_walk_order_without_engine_files(changed: ck.Container) -> None:
    assert [str(c) for c in changed.diff()] == [
        "C /bin",
        "D /bin/ls",
        "C /etc",
        "C /etc/passwd",
        "D /home",  # emptied and made again: an opaque dir, which docker reports deleted
        "A /home/y",
        "A /newdir",
        "A /newdir/sub",
        "C /tmp",
        "A /tmp/x",
    ]


def test_diff_of_a_running_container(engine: ck.Engine) -> None:
    container = engine.containers.run(IMAGE, ["sleep", "60"])
    try:
        assert container.diff() == []
        assert container.exec(["touch", "/root-made"]).exit_code == 0
        assert container.diff() == [ck.Change("/root-made", "A")]
    finally:
        container.remove(force=True)


def test_commit_makes_an_image_that_runs_with_the_file_and_the_changes(
    engine: ck.Engine, changed: ck.Container, made: list[str]
) -> None:
    image = changed.commit(
        "example/snap",
        "v1",
        changes=[
            'CMD ["cat", "/tmp/x"]',
            'ENV A=1 B="two words"',
            "EXPOSE 80 90/udp",
            "LABEL k=v",
            "WORKDIR sub",
        ],
        message="a message",
        author="someone",
    )
    made.append(image.id)
    assert image.tags == ("example/snap:v1",)
    assert image.config.cmd == ("cat", "/tmp/x")
    assert image.config.env == ("A=1", "B=two words")
    assert image.config.exposed_ports == ("80/tcp", "90/udp")
    assert dict(image.config.labels) == {"k": "v"}
    assert image.config.working_dir == "/sub"
    assert image.author == "someone"
    events = list(
        engine.events(since=changed.created, until=time.time() + 1, filters={"event": ["commit", "tag"]})
    )
    commits = [e for e in events if (e.type, e.action, e.actor_id) == ("container", "commit", changed.id)]
    assert commits and commits[-1].attributes["imageID"] == image.id
    assert commits[-1].attributes["imageRef"] == "example/snap:v1"
    assert commits[-1].attributes["comment"] == "a message"
    assert any(e.type == "image" and e.action == "tag" and e.actor_id == image.id for e in events)
    parent = engine.images.get(IMAGE)
    assert image.layers[:-1] == parent.layers and len(image.layers) == len(parent.layers) + 1

    doc = json.loads(engine.images._record(image.id).config_json)
    assert doc["container"] == changed.id
    assert doc["container_config"]["Cmd"] == ["sh", "-c", SCRIPT]
    assert doc["container_config"]["Image"] == IMAGE
    assert doc["author"] == "someone"
    assert doc["history"][-1]["created_by"] == f"sh -c {SCRIPT}"
    assert doc["history"][-1]["comment"] == "a message"
    assert "empty_layer" not in doc["history"][-1]

    run = engine.containers.run("example/snap:v1", workdir="/")
    try:
        assert run.wait(timeout=30) == 0
        assert run.logs() == b"hi\n"
    finally:
        run.remove(force=True)
    check = engine.containers.run(
        "example/snap:v1", ["sh", "-c", "ls /bin/ls; ls /home; tail -n1 /etc/passwd"]
    )
    try:
        check.wait(timeout=30)
        out = check.logs()
        assert b"/bin/ls: No such file" in out and b"y\nmore\n" in out
    finally:
        check.remove(force=True)


def test_layer_encodes_deletions_as_whiteouts_and_leaves_mount_points_out(
    engine: ck.Engine, changed: ck.Container, made: list[str]
) -> None:
    image = changed.commit()
    made.append(image.id)
    assert image.tags == ()
    names = _layer_names(engine, image)
    assert "bin/.wh.ls" in names
    assert "home/.wh..wh..opq" in names and names.index("home") < names.index("home/.wh..wh..opq")
    assert {"tmp/x", "etc/passwd", "newdir/sub", "home/y"} <= set(names)
    # the engine's /etc/hosts, /etc/hostname, /etc/resolv.conf and the volume's mount point
    assert not {"etc/hosts", "etc/hostname", "etc/resolv.conf", "data"} & set(names)


def test_an_unchanged_container_commits_no_layer(engine: ck.Engine, made: list[str]) -> None:
    container = engine.containers.run(IMAGE, ["true"])
    try:
        container.wait(timeout=30)
        assert container.diff() == []
        image = container.commit(changes=["USER nobody"])
        made.append(image.id)
    finally:
        container.remove(force=True)
    assert image.layers == engine.images.get(IMAGE).layers
    assert image.config.user == "nobody"
    top = engine.images.history(image.id)[0]
    assert top.empty_layer and top.size == 0 and top.created_by == "true"


def test_commit_of_a_running_container_pauses_it_and_lets_it_run_on(
    engine: ck.Engine, made: list[str]
) -> None:
    container = engine.containers.run(IMAGE, ["sh", "-c", "echo live > /live; sleep 60"])
    try:
        assert container.exec(["sh", "-c", "while [ ! -e /live ]; do sleep 0.05; done"]).exit_code == 0
        before = time.time()
        image = container.commit("example/live")
        made.append(image.id)
        assert container.status == "running"
        seen = engine.events(since=before - 1, until=time.time() + 1, filters={"container": [container.id]})
        actions = [e.action for e in seen]
        assert actions[-3:] == ["pause", "unpause", "commit"]
        paused = container.commit(pause=False)
        made.append(paused.id)
        assert container.status == "running"
    finally:
        container.remove(force=True)
    assert "live" in _layer_names(engine, image)
    assert image.tags == ("example/live:latest",)


def test_export_streams_the_rootfs_without_mounted_filesystems(engine: ck.Engine) -> None:
    container = engine.containers.run(IMAGE, ["sh", "-c", "echo hi > /tmp/x; sleep 60"], mounts=[ANON])
    try:
        assert container.exec(["sh", "-c", "while [ ! -e /tmp/x ]; do sleep 0.05; done"]).exit_code == 0
        assert container.exec(["sh", "-c", "echo in-volume > /data/v"]).exit_code == 0
        stream = container.export()
        chunks = list(stream)
    finally:
        container.remove(force=True, volumes=True)
    assert max(len(c) for c in chunks) <= 1 << 20
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        names = tar.getnames()
        members = {m.name: m for m in tar.getmembers()}
        data = tar.extractfile("tmp/x")
        assert data is not None and data.read() == b"hi\n"
    assert "bin/sh" in names and "etc/passwd" in names
    assert not any(n.startswith(("./", "/")) for n in names)
    assert members["proc"].isdir() and not any(n.startswith("proc/") for n in names)
    assert members["data"].isdir() and "data/v" not in names
    assert "sys" in names and not any(n.startswith("sys/") for n in names)


def test_export_of_a_stopped_container(changed: ck.Container) -> None:
    with tarfile.open(fileobj=io.BytesIO(changed.export().read_all())) as tar:
        names = set(tar.getnames())
        member = tar.extractfile("tmp/x")
        assert member is not None and member.read() == b"hi\n"
    assert "bin/ls" not in names and "home/y" in names and "bin/sh" in names


def test_history_newest_first_with_ids_of_local_parents_and_empty_layers(
    engine: ck.Engine, changed: ck.Container, made: list[str]
) -> None:
    base = engine.images.get(IMAGE)
    first = changed.commit("example/hist", "one", message="first")
    made.append(first.id)
    derived = engine.images.derive(
        first.id, ck.ImageConfig(cmd=["sh"], env=["X=1"]), created_by="/bin/sh -c #(nop)  ENV X=1"
    )
    made.append(derived.id)
    steps = engine.images.history(derived.id)
    assert [s.id for s in steps] == [derived.id, first.id, base.id]
    assert steps[0].empty_layer and steps[0].size == 0 and steps[0].tags == ()
    assert steps[0].created_by == "/bin/sh -c #(nop)  ENV X=1"
    assert steps[1].tags == ("example/hist:one",) and steps[1].comment == "first" and steps[1].size > 0
    assert steps[2].created_by == "containerkit import" and steps[2].tags == (IMAGE,)
    assert steps[0].created is not None and steps[0].created >= steps[1].created >= steps[2].created
    assert derived.layers == first.layers
    assert derived.config.env == ("X=1",)


def test_history_shows_missing_where_no_local_image_is_that_step(engine: ck.Engine, made: list[str]) -> None:
    one = engine.images.derive(None, ck.ImageConfig(env=["A=1"]), created_by="ENV A=1")
    two = engine.images.derive(one.id, ck.ImageConfig(env=["A=1", "B=2"]), created_by="ENV B=2")
    made.extend([one.id, two.id])
    assert one.layers == () and [s.id for s in engine.images.history(two.id)] == [two.id, one.id]
    engine.images.remove(one.id)
    made.remove(one.id)
    assert [s.id for s in engine.images.history(two.id)] == [two.id, "<missing>"]


def test_changes_follow_dockers_rules() -> None:
    base = {"Cmd": ["sh"], "Entrypoint": None, "Env": ["PATH=/bin", "HOME=/root"], "WorkingDir": "/app"}
    assert apply_changes(base, ['ENTRYPOINT ["/e"]'])["Cmd"] is None
    assert apply_changes(base, ['CMD ["c"]', 'ENTRYPOINT ["/e"]'])["Cmd"] == ["c"]
    assert apply_changes(base, ["CMD echo $HOME"])["Cmd"] == ["/bin/sh", "-c", "echo $HOME"]
    out = apply_changes(base, ["ENV HOME=/home/u D=${HOME}/d", "WORKDIR $HOME/w", "VOLUME /v /w"])
    assert out["Env"] == ["PATH=/bin", "HOME=/home/u", "D=/root/d"]  # one instruction sees the old env
    assert out["WorkingDir"] == "/home/u/w"
    assert out["Volumes"] == {"/v": {}, "/w": {}}
    assert apply_changes(base, ["EXPOSE 8000-8002/udp"])["ExposedPorts"] == {
        "8000/udp": {},
        "8001/udp": {},
        "8002/udp": {},
    }
    assert apply_changes(base, ["ONBUILD run echo hi"])["OnBuild"] == ["RUN echo hi"]
    assert apply_changes(base, ["HEALTHCHECK --interval=1m30s --retries=2 CMD true"])["Healthcheck"] == {
        "Interval": 90_000_000_000,
        "Retries": 2,
        "Test": ["CMD-SHELL", "true"],
    }
    assert apply_changes(base, ["STOPSIGNAL SIGINT", "USER app"])["User"] == "app"
    quoted = apply_changes(base, ["ENV L='$HOME stays' E=\\$HOME P=${HOME:+set}", 'LABEL "a b"=c d="e f"'])
    assert quoted["Env"][-3:] == ["L=$HOME stays", "E=$HOME", "P=set"]
    assert quoted["Labels"] == {"a b": "c", "d": "e f"}
    with pytest.raises(ck.InvalidArgument, match="run is not a valid change command"):
        apply_changes(base, ["RUN true"])
    with pytest.raises(ck.InvalidArgument, match="ONBUILD"):
        apply_changes(base, ["ONBUILD FROM x"])
    assert base["Cmd"] == ["sh"]  # not changed in place


def test_commit_refuses_bad_names_and_changes_before_any_work(
    engine: ck.Engine, changed: ck.Container
) -> None:
    before = set(engine.images.content.list())
    with pytest.raises(ck.InvalidArgument, match="not a valid change command"):
        changed.commit("example/bad", changes=["COPY a b"])
    with pytest.raises(ck.InvalidReference):
        changed.commit("Bad Name!")
    assert set(engine.images.content.list()) == before


def test_a_commit_killed_midway_leaves_nothing_after_recovery(
    engine_root: Path, engine: ck.Engine, changed: ck.Container
) -> None:
    blobs = set(engine.images.content.list())
    layers = set(engine.snapshots.list_layers())
    images = {i.id for i in engine.images.list()}
    # A separate process commits and is SIGKILLed right after the new layer is unpacked, before
    # the image's metadata transaction: its blobs and layer are on disk, no image names them.
    script = textwrap.dedent(
        f"""
        import os, signal
        import containerkit as ck
        import containerkit.storage.apply as apply_module  # the images module imports it per use
        real = apply_module.apply_layer
        def apply_then_die(*args, **kwargs):
            real(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        apply_module.apply_layer = apply_then_die
        engine = ck.Engine(root={str(engine_root)!r})
        engine.containers.get({changed.id!r}).commit("example/killed")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == -9, result.stderr
    assert set(engine.images.content.list()) - blobs  # it got as far as adding blobs
    assert set(engine.snapshots.list_layers()) - layers
    with ck.Engine(root=engine_root):
        pass  # an Engine recovers when it opens a root
    assert set(engine.images.content.list()) == blobs
    assert set(engine.snapshots.list_layers()) == layers
    assert {i.id for i in engine.images.list()} == images
    assert list((engine.images.content.root / "commits").glob("*")) == []
    assert os.listdir(engine.images.content.root / "ingest") == []


def test_a_user_namespaced_container_diffs_commits_and_exports_its_own_ids(
    engine: ck.Engine, made: list[str]
) -> None:
    container = engine.containers.run(IMAGE, ["sh", "-c", "echo hi > /tmp/x"], userns="auto")
    try:
        assert container.wait(timeout=30) == 0
        assert engine.snapshots.id_offset(container.id) not in (None, (0, 0))
        # the upper dir holds host ids; a copied-up /tmp is not a change of owner
        assert container.diff() == [ck.Change("/tmp", "C"), ck.Change("/tmp/x", "A")]
        image = container.commit()
        made.append(image.id)
        with tarfile.open(fileobj=io.BytesIO(container.export().read_all())) as tar:
            exported = {m.name: (m.uid, m.gid) for m in tar.getmembers() if m.name.startswith("tmp")}
    finally:
        container.remove(force=True)
    layer = io.BytesIO()
    engine.images.write_layer(image.id, -1, layer)
    with tarfile.open(fileobj=io.BytesIO(layer.getvalue())) as tar:
        assert {m.name: (m.uid, m.gid) for m in tar.getmembers()} == {"tmp": (0, 0), "tmp/x": (0, 0)}
    assert exported == {"tmp": (0, 0), "tmp/x": (0, 0)}


def test_a_committed_image_saved_by_the_engine_loads_in_skopeo_and_unpacks_in_umoci(
    engine: ck.Engine, changed: ck.Container, made: list[str], tmp_path: Path
) -> None:
    if shutil.which("skopeo") is None or shutil.which("umoci") is None:
        pytest.skip("skopeo and umoci are needed (scripts/install-system-deps)")
    image = changed.commit("example/interop", "v1")
    made.append(image.id)
    engine.images.save("example/interop:v1", tmp_path / "image.tar")
    layout = tmp_path / "layout"
    copy = ["skopeo", "copy", f"docker-archive:{tmp_path / 'image.tar'}", f"oci:{layout}:v1"]
    subprocess.run(copy, check=True, capture_output=True)
    inspected = json.loads(
        subprocess.run(
            ["skopeo", "inspect", "--config", f"oci:{layout}:v1"], check=True, capture_output=True, text=True
        ).stdout
    )
    assert inspected["rootfs"]["diff_ids"] == list(image.layers)
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:v1", str(bundle)], check=True, capture_output=True
    )
    rootfs = bundle / "rootfs"
    assert (rootfs / "tmp" / "x").read_text() == "hi\n"
    assert (rootfs / "home" / "y").exists() and (rootfs / "newdir" / "sub").is_dir()
    assert not (rootfs / "bin" / "ls").exists() and (rootfs / "bin" / "sh").exists()
    assert (rootfs / "etc" / "passwd").read_text().endswith("more\n")
