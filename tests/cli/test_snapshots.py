"""diff, commit, export and history through the containerkit entry point, on an engine root."""

from __future__ import annotations

import tarfile
from pathlib import Path

from tests.cli.conftest import IMAGE, Ck


def test_diff_commit_history_export(ck: Ck, tmp_path: Path) -> None:
    assert ck("run", "--name", "cli-snap", IMAGE, "sh", "-c", "echo hi > /tmp/x; rm /bin/ls").exit_code == 0
    try:
        assert ck("diff", "cli-snap").stdout.splitlines() == ["C /bin", "D /bin/ls", "C /tmp", "A /tmp/x"]
        committed = ck("commit", "-c", 'CMD ["cat", "/tmp/x"]', "-m", "a note", "cli-snap", "cli/snap:v1")
        assert committed.exit_code == 0, committed.stderr
        image_id = committed.stdout.strip()
        assert image_id.startswith("sha256:") and len(image_id) == 71
        assert ck("run", "--rm", "cli/snap:v1").stdout == "hi\n"

        lines = ck("history", "cli/snap:v1").stdout.splitlines()
        assert lines[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
        assert lines[1].startswith(image_id[7:19]) and lines[1].rstrip().endswith("a note")
        full = ck("history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}", "cli/snap:v1").stdout
        assert full.splitlines()[0] == f"{image_id}|sh -c echo hi > /tmp/x; rm /bin/ls"
        assert ck("history", "-q", "cli/snap:v1").stdout.splitlines()[0] == image_id[7:19]

        target = tmp_path / "rootfs.tar"
        assert ck("export", "-o", str(target), "cli-snap").exit_code == 0
        with tarfile.open(target) as tar:
            names = set(tar.getnames())
        assert "tmp/x" in names and "bin/sh" in names and "bin/ls" not in names
        assert not any(p.name.startswith(".export-") for p in tmp_path.iterdir())
    finally:
        ck("rm", "-f", "cli-snap")
        ck("rmi", "cli/snap:v1")


def test_diff_of_a_missing_container_fails_with_docker_exit_code(ck: Ck) -> None:
    result = ck("diff", "no-such-container")
    assert result.exit_code == 1 and "no-such-container" in result.stderr
