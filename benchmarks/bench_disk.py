"""Disk an image takes: a loaded busybox and a pulled 4-layer image (issue 15: at most 1.15x).

For each image, in a fresh engine root: its unpacked size, what its unpacked layer dirs take
(``snapshots/layers``), and everything under the root (content store, snapshots with their
tar-splits, metadata), in allocated bytes (``du``: blocks, each hardlinked inode once). The
unpacked size is what the layers take on this filesystem when each is extracted by ``tar -x``
into a directory of its own (what docker's overlay2 keeps): small files take whole blocks, so
the image's Size (the sum of its uncompressed layer tars, as docker reports it) understates
any unpacked tree of many small files; root / Size is printed beside it. Ratios: root /
unpacked (the target), root / Size, root / layer dirs (the overhead over the layers alone).

Then the time to save the image and to push it to a second registry (its layers written again
from the layer dirs: uncompressed for the save, gzipped for the push), since the store keeps
no blob to send.

The 4-layer image is generated as bench_pull's (gzip layers, many small files, a few large
ones, whiteouts), put into Debian's docker-registry on 127.0.0.1 with skopeo, then pulled.

Usage (as root, from the repository root): ``python3 benchmarks/bench_disk.py [--size-mb 400]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import containerkit as ck
from benchmarks.bench_pull import _big_layout
from containerkit.images.busybox import write_busybox_rootfs
from tests.images.registry.servers import start_registry


def _du(path: Path) -> int:
    """Allocated bytes under ``path`` (st_blocks), each inode once, not crossing mounts."""
    seen: set[tuple[int, int]] = set()
    total = 0
    dev = path.stat().st_dev
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            if st.st_dev != dev or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total + path.stat().st_blocks * 512


def unpacked_on_disk(layer_blobs: list[Path], scratch: Path) -> int:
    """What the layers take extracted by ``tar -x``, each into a directory of its own."""
    total = 0
    for n, blob in enumerate(layer_blobs):
        dest = scratch / f"tar-x-{n}"
        dest.mkdir(parents=True)
        try:
            subprocess.run(["tar", "--numeric-owner", "-p", "-xf", str(blob), "-C", str(dest)], check=True)
            subprocess.run(["sync"], check=True)
            total += _du(dest)
        finally:
            shutil.rmtree(dest, ignore_errors=True)
    return total


def row(name: str, root_dir: Path, image: ck.Image, unpacked: int) -> dict[str, float]:
    """Disk figures of ``image``, alone in the engine root ``root_dir`` (closed: at rest, its
    database's write-ahead log checkpointed), printed and returned."""
    subprocess.run(["sync"], check=True)
    root = _du(root_dir)
    layers = _du(root_dir / "snapshots" / "layers")
    content = _du(root_dir / "content")
    figures = {
        "unpacked": float(unpacked),
        "size": float(image.size),
        "layer dirs": float(layers),
        "content": float(content),
        "root": float(root),
        "root/unpacked": root / unpacked,
    }
    print(
        f"{name:9} unpacked {unpacked / 1e6:7.1f} MB (Size {image.size / 1e6:7.1f} MB)  "
        f"layer dirs {layers / 1e6:7.1f} MB  content {content / 1e6:6.2f} MB  root {root / 1e6:7.1f} MB  "
        f"root/unpacked {root / unpacked:5.3f}x  root/Size {root / image.size:5.3f}x  "
        f"root/layer dirs {root / layers:5.3f}x"
    )
    return figures


def busybox_loaded(work: Path) -> dict[str, float]:
    """busybox saved by one engine and loaded into a fresh one: its disk figures."""
    work.mkdir(parents=True, exist_ok=True)
    tar = write_busybox_rootfs(work / "busybox.tar")
    with ck.Engine(root=work / "src", forkserver=False) as src:
        src.images.import_rootfs(tar, "busybox:latest")
        src.images.save("busybox:latest", work / "busybox-archive.tar")
    with ck.Engine(root=work / "busybox", forkserver=False) as engine:
        (image,) = engine.images.load(work / "busybox-archive.tar")
    return row("busybox", work / "busybox", image, unpacked_on_disk([tar], work / "scratch"))


def pulled(work: Path, size_mb: int, layers: int, *, timings: bool = True) -> dict[str, float]:
    """bench_pull's layered image pulled from a local registry into a fresh engine: its disk
    figures, then (``timings``) the times of a save and of pushes (rebuilt and mounted)."""
    work.mkdir(parents=True, exist_ok=True)
    layout = _big_layout(work, size_mb, layers)
    with start_registry(work / "registry") as registry, start_registry(work / "registry2") as second:
        ref = f"{registry.host}/bench/big:1"
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                f"oci:{layout}:bench",
                f"docker://{ref}",
            ],
            check=True,
        )
        with ck.Engine(root=work / "pulled", forkserver=False) as engine:
            start = time.perf_counter()
            image = engine.images.pull(ref)
            pull_s = time.perf_counter() - start
        blobs = [work / f"layer{n}.tar.gz" for n in range(layers)]  # _big_layout's
        figures = row(f"{layers}-layer", work / "pulled", image, unpacked_on_disk(blobs, work / "scratch"))
        if not timings:
            return figures
        with ck.Engine(root=work / "pulled", forkserver=False) as engine:
            start = time.perf_counter()
            engine.images.save(ref, work / "big-archive.tar")
            saved = time.perf_counter() - start
            engine.images.tag(image.id, f"{second.host}/bench/big:1")
            start = time.perf_counter()
            engine.images.push(f"{second.host}/bench/big:1")
            pushed = time.perf_counter() - start
            engine.images.tag(image.id, f"{registry.host}/bench/copy:1")
            start = time.perf_counter()
            engine.images.push(f"{registry.host}/bench/copy:1")
            mounted = time.perf_counter() - start
        print(
            f"{layers}-layer: pull {pull_s:.2f} s, save (layers rebuilt, uncompressed) {saved:.2f} s, "
            f"push to an empty registry (rebuilt, gzipped) {pushed:.2f} s, "
            f"push to the registry it came from (mounted) {mounted:.2f} s"
        )
        return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=int, default=400, help="uncompressed size of the big image (400)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    if not shutil.which("skopeo"):
        print("needs skopeo", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-disk-", dir=args.workdir))
    try:
        busybox_loaded(work)
        pulled(work, args.size_mb, args.layers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
