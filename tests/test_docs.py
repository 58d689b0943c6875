"""The documentation site builds with ``mkdocs build --strict``: no broken link, no missing
page, no API reference entry whose object is gone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_site_builds_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    api = (site / "api" / "index.html").read_text()
    for name in (
        "Engine",
        "ContainerCollection",
        "WaitTimeout",
        "reap_expired",
        "containerkit_run",
        "Client",
        "NetworkCollection",
        "ExecProcess",
        "AttachStream",
    ):
        assert name in api, f"{name} missing from the API reference"
    for method in ("exec", "put", "get_archive", "stats", "top", "pause", "resize", "attach"):
        assert f"{method}" in api, f"Container.{method} missing from the API reference"
    assert ":class:" not in api and ":meth:" not in api, "raw reST roles in the rendered API page"
    for page in ("architecture", "pytest", "compatibility", "security", "daemon", "cli"):
        assert (site / page / "index.html").exists()
    cli = (site / "cli" / "index.html").read_text()
    for verb in ("run", "exec", "cp", "volume", "network", "logs"):
        assert f"containerkit {verb}" in cli, f"{verb} missing from the CLI reference"
