"""docker commit / diff / export / history through containerkitd, driven by docker-py and the
docker CLI, and a committed image read by skopeo and unpacked by umoci."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import IMAGE, Daemon

SCRIPT = "echo hi > /tmp/x; rm /bin/ls; mkdir /newdir"


@pytest.fixture
def exited(client: Any) -> Iterator[Any]:
    container = client.containers.run(IMAGE, ["sh", "-c", SCRIPT], detach=True)
    assert container.wait(timeout=30)["StatusCode"] == 0
    yield container
    container.remove(force=True)


@pytest.fixture
def images_made(client: Any) -> Iterator[list[str]]:
    ids: list[str] = []
    yield ids
    for image_id in reversed(ids):
        try:
            client.images.remove(image_id, force=True)
        except Exception as exc:  # docker.errors.ImageNotFound: already gone
            if "No such image" not in str(exc):
                raise


def test_docker_py_diff_commit_history_export(client: Any, exited: Any, images_made: list[str]) -> None:
    assert exited.diff() == [
        {"Path": "/bin", "Kind": 0},
        {"Path": "/bin/ls", "Kind": 2},
        {"Path": "/newdir", "Kind": 1},
        {"Path": "/tmp", "Kind": 0},
        {"Path": "/tmp/x", "Kind": 1},
    ]
    image = exited.commit(
        repository="example/pycommit",
        tag="v1",
        message="from docker-py",
        author="tester",
        changes=['CMD ["cat", "/tmp/x"]', "ENV A=1"],
    )
    images_made.append(image.id)
    assert "example/pycommit:v1" in image.tags
    assert image.attrs["Config"]["Cmd"] == ["cat", "/tmp/x"]
    assert "A=1" in image.attrs["Config"]["Env"]
    assert client.containers.run("example/pycommit:v1", remove=True) == b"hi\n"

    steps = image.history()
    assert steps[0]["Id"] == image.id
    assert steps[0]["Tags"] == ["example/pycommit:v1"]
    assert steps[0]["Comment"] == "from docker-py"
    assert steps[0]["CreatedBy"] == f"sh -c {SCRIPT}"
    assert steps[0]["Size"] > 0
    assert steps[1]["Id"] == client.images.get(IMAGE).id

    with tarfile.open(fileobj=io.BytesIO(b"".join(exited.export(chunk_size=65536)))) as tar:
        names = tar.getnames()
        data = tar.extractfile("tmp/x")
        assert data is not None and data.read() == b"hi\n"
    assert "bin/sh" in names and "bin/ls" not in names


def test_docker_py_diff_of_an_unchanged_container_is_none_as_dockerd(client: Any) -> None:
    container = client.containers.create(IMAGE, ["true"])
    try:
        assert container.diff() is None
    finally:
        container.remove(force=True)


def test_docker_py_commit_of_a_running_container_with_a_config_body(
    client: Any, images_made: list[str]
) -> None:
    container = client.containers.run(IMAGE, ["sleep", "60"], detach=True)
    try:
        image = container.commit(repository="example/pyrunning", conf={"Labels": {"from": "body"}})
        images_made.append(image.id)
        container.reload()
        assert container.status == "running"
    finally:
        container.remove(force=True)
    assert image.attrs["Config"]["Labels"] == {"from": "body"}
    assert image.attrs["Config"]["Cmd"] == ["sleep", "60"]


def test_docker_cli_commit_change_diff_history_export(
    cli: Any, daemon: Daemon, tmp_path: Path, images_made: list[str]
) -> None:
    name = "ck-commit-cli"
    cli("run", "--name", name, IMAGE, "sh", "-c", SCRIPT)
    try:
        assert cli("diff", name).stdout.splitlines() == [
            "C /bin",
            "D /bin/ls",
            "A /newdir",
            "C /tmp",
            "A /tmp/x",
        ]
        image_id = cli(
            "commit",
            "--change",
            'ENTRYPOINT ["cat"]',
            "--change",
            "CMD /tmp/x",
            "-m",
            "via cli",
            "-a",
            "cli author",
            name,
            "example/clicommit:v2",
        ).stdout.strip()
        images_made.append(image_id)
        assert image_id.startswith("sha256:")
        config = json.loads(cli("image", "inspect", "example/clicommit:v2").stdout)[0]
        assert config["Config"]["Entrypoint"] == ["cat"]
        assert config["Config"]["Cmd"] == ["/bin/sh", "-c", "/tmp/x"]
        assert config["Author"] == "cli author"
        history = cli("history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Comment}}", image_id)
        first = history.stdout.splitlines()[0].split("|")
        assert first == [image_id, f"sh -c {SCRIPT}", "via cli"]
        out = tmp_path / "export.tar"
        cli("export", "-o", str(out), name)
        with tarfile.open(out) as tar:
            names = set(tar.getnames())
        assert "tmp/x" in names and "bin/ls" not in names and "newdir" in names
    finally:
        cli("rm", "-f", name)


def test_committed_image_saved_by_the_daemon_unpacks_in_umoci(
    client: Any, exited: Any, tmp_path: Path, images_made: list[str]
) -> None:
    if shutil.which("skopeo") is None or shutil.which("umoci") is None:
        pytest.skip("skopeo and umoci are needed (scripts/install-system-deps)")
    image = exited.commit(repository="example/interop", tag="v1")
    images_made.append(image.id)
    archive = tmp_path / "image.tar"
    with archive.open("wb") as out:
        for chunk in image.save(named=True):
            out.write(chunk)
    rootfs = _unpack(archive, tmp_path)
    assert (rootfs / "tmp" / "x").read_text() == "hi\n"
    assert (rootfs / "newdir").is_dir()
    assert not (rootfs / "bin" / "ls").exists()
    assert (rootfs / "bin" / "sh").exists()


def _unpack(archive: Path, tmp_path: Path) -> Path:
    """A docker-archive copied by skopeo into an OCI layout and unpacked by umoci: the rootfs."""
    layout = tmp_path / "layout"
    subprocess.run(
        ["skopeo", "copy", f"docker-archive:{archive}", f"oci:{layout}:v1"], check=True, capture_output=True
    )
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:v1", str(bundle)], check=True, capture_output=True
    )
    return bundle / "rootfs"
