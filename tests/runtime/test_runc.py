"""The runc/crun backend: binaries, error mapping, and crun's refusal of this cgroup layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from containerkit.errors import CommandNotFound, RuntimeFailure, Unavailable
from containerkit.linux.cgroups import probe
from containerkit.runtime import runc
from tests.conftest import require_binary, require_root


def test_error_classification() -> None:
    assert runc.classify_error('exec: "x": executable file not found in $PATH') == (CommandNotFound, 127)
    assert runc.classify_error('exec: "/etc/passwd": permission denied') == (RuntimeFailure, 126)
    assert runc.classify_error("cgroups in hybrid mode not supported, drop ...") == (Unavailable, 125)
    assert runc.classify_error("something else") == (RuntimeFailure, 125)


def test_unknown_or_missing_runtime() -> None:
    with pytest.raises(Unavailable, match="kata"):
        runc.find_binary("kata")
    assert not runc.available("kata")


def test_runc_is_available() -> None:
    require_root()
    require_binary("runc")
    assert runc.available("runc")
    assert runc.unavailable_reason("runc") is None


def test_crun_refusal_on_hybrid_cgroups_is_explained() -> None:
    require_root()
    require_binary("crun")
    if probe() != "hybrid":
        pytest.skip("only cgroup v1 hybrid hosts make crun 1.8 refuse")
    reason = runc.unavailable_reason("crun")
    assert reason is not None and "hybrid" in reason
    assert not runc.available("crun")


def test_delete_of_unknown_container_is_fine(tmp_path: Path) -> None:
    require_root()
    require_binary("runc")
    backend = runc.RuncBackend("runc", root=tmp_path / "root", log_file=tmp_path / "log.json")
    backend.delete("never-created")
    with pytest.raises(RuntimeFailure, match="never-created"):
        backend.kill("never-created", 9)
    assert shutil.which("runc")
