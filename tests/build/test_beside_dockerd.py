"""The same Dockerfile built by dockerd's classic builder and by containerkit: the same config,
the same history lines, the same files (where a dockerd can run: Debian's docker.io, in a
throwaway network namespace, as benchmarks/_peers runs it)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerkit as ck

pytestmark = pytest.mark.slow

DOCKERFILE = """FROM busybox:latest
ARG VERSION=1.2
ENV APP=/srv/app PATH_EXTRA="a b"
LABEL org.example.name=demo version=$VERSION
WORKDIR $APP
COPY src/ ./
COPY --chown=1000:1000 conf.ini /etc/app/conf.ini
ADD bundle.tar /opt/
RUN echo "built $VERSION" > built.txt && mkdir -p /var/lib/app && rm -f /bin/vi
USER 1000:1000
EXPOSE 8080 53/udp
VOLUME ["/data", "/cache"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD cat built.txt
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo child
ENTRYPOINT ["cat"]
CMD ["built.txt"]
"""

_CONFIG_KEYS = (
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "Shell",
    "OnBuild",
)
_SKIP = (
    "/proc",
    "/sys",
    "/dev",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/etc/mtab",
    "/.dockerenv",
)
_LISTING = (
    "find / -xdev \\( "
    + " -o ".join(f"-path {path}" for path in _SKIP)
    + " \\) -prune -o -print0 | xargs -0 stat -c '%n %a %u %g %s %F' | sort"
)
"""Every path with mode, owner, size and kind, but the runtime's own mount points."""


@pytest.fixture(scope="module")
def dockerd(busybox_rootfs_tar: Path) -> Iterator[list[str]]:
    from benchmarks._peers import throwaway_dockerd

    with throwaway_dockerd(busybox_rootfs_tar) as found:
        if isinstance(found, str):
            pytest.skip(f"no dockerd here: {found}")
        yield found[1]


def _context(root: Path) -> Path:
    import io
    import tarfile

    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "main.sh").write_text("echo main\n")
    (root / "src" / "pkg" / "lib.sh").write_text("echo lib\n")
    (root / "conf.ini").write_text("[app]\n")
    with tarfile.open(root / "bundle.tar", "w") as tar:
        data = b"bundled\n"
        info = tarfile.TarInfo("bundle/readme")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (root / "Dockerfile").write_text(DOCKERFILE)
    return root


def test_same_config_history_and_files_as_dockerd(
    dockerd: list[str], build_engine: ck.Engine, tmp_path: Path
) -> None:
    context = _context(tmp_path / "ctx")
    env = {"DOCKER_BUILDKIT": "0", "DOCKER_CONFIG": str(tmp_path / "docker-config"), "PATH": "/usr/bin:/bin"}
    built = subprocess.run(
        [*dockerd, "build", "-q", "-t", "beside/app:1", str(context)], env=env, capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    theirs = json.loads(
        subprocess.run(
            [*dockerd, "inspect", "beside/app:1"], capture_output=True, text=True, check=True
        ).stdout
    )[0]
    their_history = subprocess.run(
        [*dockerd, "history", "--no-trunc", "--format", "{{.CreatedBy}}", "beside/app:1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    their_files = subprocess.run(
        [
            *dockerd,
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            "0",
            "--entrypoint",
            "sh",
            "beside/app:1",
            "-c",
            _LISTING,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    build_engine.images.tag("example/busybox:latest", "busybox:latest")
    ours = build_engine.images.build(context, tag="beside/app:1")
    record = build_engine.metadata.images.get(ours.id)
    assert record is not None
    our_doc = json.loads(record.config_json)
    our_history = [h["created_by"] for h in reversed(our_doc["history"])]
    container = build_engine.containers.run(
        ours.id, ["-c", _LISTING], entrypoint=["sh"], user="0", network="none"
    )
    try:
        assert container.wait() == 0
        our_files = container.logs().decode()
    finally:
        container.remove(force=True)

    for key in _CONFIG_KEYS:
        assert (our_doc["config"].get(key) or None) == (theirs["Config"].get(key) or None), key
    # the base image's own line differs (docker import's comment against ours); the COPY/ADD
    # lines' file:/dir: hashes are tarsums of the same files, so equal too
    assert our_history[:-1] == their_history[:-1]
    # same tree: names, modes, owners, sizes, kinds (mtimes of made files differ)
    import difflib

    assert our_files == their_files, "\n".join(
        difflib.unified_diff(
            their_files.splitlines(), our_files.splitlines(), "dockerd", "containerkit", lineterm=""
        )
    )
