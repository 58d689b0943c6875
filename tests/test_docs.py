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
    for name in ("Engine", "ContainerCollection", "WaitTimeout", "reap_expired", "containerkit_run"):
        assert name in api, f"{name} missing from the API reference"
    for page in ("architecture", "pytest", "compatibility", "security"):
        assert (site / page / "index.html").exists()
