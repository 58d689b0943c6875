"""POST /build through docker-py, the docker CLI (classic builder) and raw HTTP against containerkitd."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest


def _context(files: dict[str, str | bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(raw))
    return out.getvalue()


def test_docker_py_builds_tags_and_runs(client: Any, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox:latest\n"
        "ARG WHO=nobody\n"
        "COPY hello.txt /srv/\n"
        'RUN echo "built by $WHO" > /srv/by && echo to-stderr >&2\n'
        "ENV MODE=test\n"
        "EXPOSE 8080\n"
        "LABEL org.example.kind=demo\n"
        'CMD ["sh", "-c", "cat /srv/hello.txt /srv/by; echo $MODE"]\n'
    )
    (tmp_path / "hello.txt").write_text("hello\n")
    (tmp_path / "ignored.log").write_text("never sent\n")
    (tmp_path / ".dockerignore").write_text("*.log\n")
    image, stream = client.images.build(
        path=str(tmp_path), tag="ckbuild/dpy:1", buildargs={"WHO": "docker-py"}, rm=True
    )
    logs = list(stream)
    lines = [entry.get("stream", "") for entry in logs]
    assert any(line.startswith("Step 1/8 : FROM busybox:latest") for line in lines)
    assert any(line == "\x1b[91mto-stderr\n\x1b[0m" for line in lines)
    assert [e["aux"]["ID"] for e in logs if "aux" in e] == [image.id]
    assert lines[-1] == "Successfully tagged ckbuild/dpy:1\n"
    assert image.attrs["Config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert image.labels == {"org.example.kind": "demo"}
    out = client.containers.run("ckbuild/dpy:1", remove=True, network_mode="none")
    assert out == b"hello\nbuilt by docker-py\ntest\n"

    # a second build hits the cache at every step
    again, logs = client.images.build(path=str(tmp_path), tag="ckbuild/dpy:1", buildargs={"WHO": "docker-py"})
    assert again.id == image.id
    assert sum(1 for e in logs if e.get("stream") == " ---> Using cache\n") == 7


def test_docker_py_failed_run_is_build_error_and_leaves_nothing(client: Any, tmp_path: Path) -> None:
    docker = pytest.importorskip("docker")
    before = {c.id for c in client.containers.list(all=True)}
    images_before = {i.id for i in client.images.list(all=True)}
    (tmp_path / "Dockerfile").write_text("FROM busybox:latest\nRUN echo about to fail; exit 3\n")
    with pytest.raises(docker.errors.BuildError) as caught:
        client.images.build(path=str(tmp_path), tag="ckbuild/fails:1")
    assert "The command '/bin/sh -c echo about to fail; exit 3' returned a non-zero code: 3" in str(
        caught.value
    )
    assert {c.id for c in client.containers.list(all=True)} == before
    assert {i.id for i in client.images.list(all=True)} == images_before


def test_docker_py_out_of_context_dockerfile(client: Any, tmp_path: Path) -> None:
    """docker-py sends ``dockerfile`` twice for a Dockerfile outside the context: the first
    value is its name in the tar, and its .dockerignore keeps it out of COPY."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "data").write_text("payload\n")
    elsewhere = tmp_path / "elsewhere.Dockerfile"
    elsewhere.write_text('FROM busybox:latest\nCOPY . /c/\nCMD ["ls", "-a", "/c"]\n')
    image, _ = client.images.build(path=str(context), dockerfile=str(elsewhere), tag="ckbuild/outside:1")
    out = client.containers.run(image.id, remove=True, network_mode="none").decode().split()
    assert "data" in out and not [name for name in out if name.startswith(".dockerfile.")]


def test_raw_api_version_2_is_refused_and_gzip_context_builds(daemon: Any) -> None:
    body = _context({"Dockerfile": 'FROM busybox:latest\nCMD ["true"]\n'})
    status, _, data = daemon.request("POST", "/build?version=2", body=body)
    assert status == 400 and b"BuildKit" in data
    import gzip

    status, _, data = daemon.request(
        "POST",
        "/build?t=ckbuild/gz:1&rm=True&forcerm=False&nocache=False",
        body=gzip.compress(body),
        headers={"Content-Type": "application/tar", "Content-Encoding": "gzip"},
    )
    assert status == 200, data
    messages = [json.loads(line) for line in data.splitlines() if line.strip()]
    assert messages[-2] == {"stream": messages[-2]["stream"]} and messages[-2]["stream"].startswith(
        "Successfully built "
    )
    assert messages[-1] == {"stream": "Successfully tagged ckbuild/gz:1\n"}


def test_docker_cli_classic_build(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox:latest AS base\n"
        "RUN echo from-base > /base.txt\n"
        "FROM busybox:latest\n"
        "COPY --from=base /base.txt /copied.txt\n"
        "WORKDIR /w\n"
        'CMD ["cat", "/copied.txt"]\n'
    )
    env_cli = cli
    env_cli.env["DOCKER_BUILDKIT"] = "0"  # type: ignore[attr-defined]
    result = cli("build", "-t", "ckbuild/cli:1", str(tmp_path), timeout=120)
    assert "Step 1/6 : FROM busybox:latest AS base" in result.stdout
    assert "Successfully tagged ckbuild/cli:1" in result.stdout
    assert cli("run", "--rm", "--network", "none", "ckbuild/cli:1").stdout == "from-base\n"
    again = cli("build", "-t", "ckbuild/cli:1", str(tmp_path), timeout=120)
    assert again.stdout.count("Using cache") == 4


def test_testcontainers_docker_image(daemon: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("testcontainers")
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.image import DockerImage

    monkeypatch.setenv("DOCKER_HOST", daemon.url)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    (tmp_path / "Dockerfile").write_text(
        'FROM busybox:latest\nRUN echo tc-built > /built\nCMD ["sh", "-c", "cat /built; echo done"]\n'
    )
    with DockerImage(path=str(tmp_path), tag="ckbuild/tc:1") as image:
        assert str(image) == "ckbuild/tc:1"
        with DockerContainer(str(image)).with_kwargs(network_mode="none") as container:
            container.get_wrapped_container().wait(timeout=20)
            assert container.get_logs()[0] == b"tc-built\ndone\n"


def test_x_registry_config_authorises_the_base_pull(
    daemon: Any, registry_basic: Any, busybox_rootfs_tar: Path, tmp_path: Path
) -> None:
    import base64

    import containerkit as ck

    user, password = registry_basic.credentials
    remote = f"{registry_basic.host}/private/busybox:1"
    with ck.Engine(root=tmp_path / "pusher") as pusher:
        pusher.images.import_rootfs(busybox_rootfs_tar, remote, config={"Cmd": ["sh"]})
        pusher.images.push(remote, auth=ck.RegistryAuth(username=user, password=password))
    body = _context({"Dockerfile": f"FROM {remote}\nRUN echo authorised > /a\n"})
    status, _, data = daemon.request("POST", "/build?t=ckbuild/private:1", body=body)
    # no credentials: the registry refuses the pull (in-band: the stream had begun with step 1)
    assert status == 200 and b"unauthorized: authentication required" in data.splitlines()[-1]
    config = {registry_basic.host: {"username": user, "password": password}}
    header = base64.urlsafe_b64encode(json.dumps(config).encode()).decode()
    status, _, data = daemon.request(
        "POST", "/build?t=ckbuild/private:1", body=body, headers={"X-Registry-Config": header}
    )
    assert status == 200, data
    messages = [json.loads(line) for line in data.splitlines() if line.strip()]
    assert messages[-1] == {"stream": "Successfully tagged ckbuild/private:1\n"}, messages


def test_a_client_that_leaves_cancels_the_build(daemon: Any) -> None:
    """docker build interrupted: the running RUN's container goes, no later step runs."""
    import socket
    import time
    import urllib.parse

    body = _context({"Dockerfile": "FROM busybox:latest\nRUN echo started; sleep 600\nRUN echo never\n"})
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(daemon.socket))
    head = f"POST /build?t=ckbuild/cancelled:1 HTTP/1.1\r\nHost: d\r\nContent-Length: {len(body)}\r\n\r\n"
    sock.sendall(head.encode() + body)
    seen = b""
    while b"started" not in seen:
        chunk = sock.recv(65536)
        assert chunk, seen
        seen += chunk
    sock.close()
    filters = urllib.parse.quote(json.dumps({"label": ["containerkit.build.owner"]}))
    deadline = time.monotonic() + 60  # a liveness bound, not a speed claim
    while True:
        status, _, data = daemon.request("GET", f"/containers/json?all=1&filters={filters}")
        assert status == 200
        if json.loads(data) == []:
            break
        assert time.monotonic() < deadline, data
        time.sleep(0.2)
    status, _, _ = daemon.request("GET", "/images/ckbuild/cancelled:1/json")
    assert status == 404
