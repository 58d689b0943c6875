"""Start-to-exit of ``true``: the shim via the spawner, without one (forked from this
single-threaded process), and plain ``runc run``.

    sudo python3 benchmarks/bench_spawn.py [N]

Each run gets its own overlay over one busybox tree; medians in milliseconds.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from containerkit.images.busybox import write_busybox_rootfs
from containerkit.linux.cgroups import remove_if_empty
from containerkit.runtime.bundle import ROOTFS_MOUNT_ANNOTATION, build_oci_config, write_config
from containerkit.runtime.shim import ShimRequest, start_container
from containerkit.runtime.spawner import Spawner
from containerkit.runtime.state import wait_for_exit
from containerkit.spec import ContainerSpec, ImageConfig


def _request(base: Path, lower: Path, runtime: str) -> ShimRequest:
    cid = f"bench-{uuid.uuid4().hex[:10]}"
    box = base / cid
    for sub in ("upper", "work", "bundle/rootfs", "state"):
        (box / sub).mkdir(parents=True)
    rootfs = {
        "type": "overlay",
        "source": "overlay",
        "options": [f"lowerdir={lower}", f"upperdir={box / 'upper'}", f"workdir={box / 'work'}"],
    }
    config = build_oci_config(
        ContainerSpec(image="busybox", command=["true"]),
        ImageConfig(),
        user=(0, 0, []),
        hostname="bench",
        etc_files={},
        mounts=[],
        cgroups_path=f"containerkit/{cid}",
        annotations={ROOTFS_MOUNT_ANNOTATION: json.dumps(rootfs)},
    )
    config["process"].pop("rlimits", None)
    write_config(box / "bundle", config)
    return ShimRequest(
        container_id=cid,
        bundle=box / "bundle",
        state_dir=box / "state",
        runtime=runtime,  # type: ignore[arg-type]
        cgroup_name=f"containerkit/{cid}",
        runc_root=base / "runc-root",
    )


def _time(n: int, make: Callable[[], Callable[[], None]]) -> float:
    samples = []
    for _ in range(n):
        run = make()
        t0 = time.perf_counter()
        run()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    base = Path(tempfile.mkdtemp(prefix="ck-bench-"))
    try:
        lower = base / "busybox"
        lower.mkdir()
        subprocess.run(
            ["tar", "-xf", str(write_busybox_rootfs(base / "rootfs.tar")), "-C", str(lower)], check=True
        )
        results: dict[str, float] = {}
        with Spawner() as spawner:
            spawner.start()
            for runtime in ("builtin", "runc"):

                def via_spawner(rt: str = runtime) -> Callable[[], None]:
                    request = _request(base, lower, rt)
                    return lambda: (
                        start_container(request, spawner=spawner),
                        wait_for_exit(request.state_dir),
                    )[1]

                def fresh(rt: str = runtime) -> Callable[[], None]:
                    request = _request(base, lower, rt)
                    return lambda: (start_container(request), wait_for_exit(request.state_dir))[1]

                results[f"shim+{runtime} via spawner"] = _time(n, via_spawner)
                results[f"shim+{runtime} without spawner"] = _time(n, fresh)

        def plain_runc() -> Callable[[], None]:
            request = _request(base, lower, "runc")
            config = json.loads((request.bundle / "config.json").read_text())
            config["root"] = {"path": str(lower), "readonly": True}
            # runc's own default cgroup (/<id>), which it removes whole; under our "containerkit/"
            # parent it would leave the parent behind, nobody's to clean
            config["linux"].pop("cgroupsPath", None)
            write_config(request.bundle, config)
            argv = ["runc", "--root", str(base / "runc-root"), "run", "--bundle", str(request.bundle)]
            return lambda: subprocess.run([*argv, request.container_id], check=True, stdin=subprocess.DEVNULL)

        results["runc run (no shim)"] = _time(n, plain_runc)
        for name, ms in results.items():
            print(f"{name:32s} {ms:7.1f} ms  (median of {n})")
    finally:
        subprocess.run(["umount", "-R", "-l", str(base)], stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(base, ignore_errors=True)
        remove_if_empty("containerkit")  # the shared parent cgroup (an Engine removes it at close)


if __name__ == "__main__":
    main()
