"""An image the builder made is a plain OCI image: skopeo reads it and umoci unpacks it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import containerkit as ck

BASE = "example/busybox:latest"


def test_built_image_loads_in_skopeo_and_umoci(build_engine: ck.Engine, tmp_path: Path) -> None:
    if not (shutil.which("skopeo") and shutil.which("umoci")):
        pytest.skip("skopeo and umoci are not installed")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "file.txt").write_text("from the context\n")
    (context / "Dockerfile").write_text(
        f'FROM {BASE}\nCOPY file.txt /srv/\nRUN rm /bin/vi && echo made > /srv/run.txt\nENV K=V\nCMD ["sh"]\n'
    )
    build_engine.images.build(context, tag="interop/app:1")
    layout = tmp_path / "layout"
    build_engine.images.save("interop/app:1", layout, format="oci")
    inspect = subprocess.run(
        ["skopeo", "inspect", "--config", f"oci:{layout}:1"], capture_output=True, text=True, check=True
    )
    config = json.loads(inspect.stdout)
    assert config["config"]["Env"][-1] == "K=V" and config["config"]["Cmd"] == ["sh"]
    assert config["history"][-1]["created_by"] == '/bin/sh -c #(nop)  CMD ["sh"]'
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:1", str(bundle)], capture_output=True, check=True
    )
    rootfs = bundle / "rootfs"
    assert (rootfs / "srv" / "file.txt").read_text() == "from the context\n"
    assert (rootfs / "srv" / "run.txt").read_text() == "made\n"
    assert not (rootfs / "bin" / "vi").exists() and (rootfs / "bin" / "sh").exists()  # the whiteout applied
