"""Run a first container end to end: build a busybox image locally, run it, read its output.

Usage (root): python3 examples/first_container.py [ROOT]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import containerkit as ck
from containerkit.images.busybox import write_busybox_rootfs


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/var/lib/containerkit")
    with ck.Engine(root=root) as engine, tempfile.TemporaryDirectory() as tmp:
        try:
            image = engine.images.get("example/busybox:latest")
        except ck.NotFound:
            tar = write_busybox_rootfs(Path(tmp) / "rootfs.tar")
            image = engine.images.import_rootfs(tar, "example/busybox:latest", config={"Cmd": ["sh"]})
        print(f"image {image.tags[0] if image.tags else image.short_id} ({image.short_id}, {image.size} bytes)")
        container = engine.containers.run(
            "example/busybox",
            ["sh", "-c", "echo hello from $(hostname) as $(id -un), pid $$; cat /etc/os-release"],
            resources=ck.Resources(memory="64m", pids=50),
        )
        code = container.wait(timeout=30)
        print(container.logs().decode(), end="")
        print(f"container {container.short_id} exited with {code}")
        container.remove()
        for img in engine.images.list():
            print(f"{', '.join(img.tags) or '<none>'}\t{img.short_id}\t{img.size}")
        return code


if __name__ == "__main__":
    raise SystemExit(main())
