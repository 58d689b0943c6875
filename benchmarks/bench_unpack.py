"""Layer unpacking: containerkit's unpack_layer against ``umoci unpack``, same layers, same run.

Generates a layered image (many small files, some large ones, symlinks, hardlinks and
whiteouts in the upper layers), writes it as an OCI layout for umoci, then times

* umoci unpack (all layers applied into one rootfs, plus umoci's own mtree manifest);
* unpack_layer with ``whiteouts="apply"`` into one rootfs (the same job);
* unpack_layer with ``whiteouts="overlay"``, one directory per layer (what the snapshot store does);
* ``Engine.images.load`` of the OCI layout (verified ingest into the content store + unpack);
* ``skopeo copy`` of the same layout to another OCI layout (verified copy, no unpack).

Usage (as root): ``python benchmarks/bench_unpack.py [--size-mb 300] [--layers 4] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import containerkit as ck
from containerkit.images.unpack import unpack_layer

MTIME = 1_700_000_000
WORDS = [b"alpha", b"beta", b"gamma", b"delta", b"lib", b"usr", b"share", b"config", b"python", b"\n"]


def _data(rng: random.Random, size: int) -> bytes:
    """Half text-like (compressible), half random: close to real binaries and sources."""
    text = b" ".join(rng.choice(WORDS) for _ in range(size // 10 + 1))[: size // 2]
    return text + rng.randbytes(size - len(text))


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, MTIME
    tar.addfile(info, io.BytesIO(data))


def _layer(index: int, budget: int, rng: random.Random, out: Path) -> tuple[int, str]:
    """Write one tar+gzip layer of about ``budget`` bytes; return (uncompressed size, diff_id)."""
    raw = out.with_suffix(".tar")
    with tarfile.open(raw, "w", format=tarfile.PAX_FORMAT) as tar:
        written, n = 0, 0
        large_budget = budget // 3  # a third in a few large files, the rest in small ones
        while written < large_budget:
            size = min(rng.randint(4 << 20, 24 << 20), large_budget - written + 1)
            _add(tar, f"layer{index}/large/blob{n}.bin", _data(rng, size), 0o755)
            written, n = written + size, n + 1
        while written < budget:
            d = f"layer{index}/pkg{n % 200:03d}/sub{n % 7}"
            size = int(rng.expovariate(1 / 6000)) + 1
            _add(tar, f"{d}/file{n}.py", _data(rng, size))
            if n % 50 == 0:
                info = tarfile.TarInfo(f"{d}/link{n}")
                info.type, info.linkname, info.mtime = tarfile.SYMTYPE, f"file{n}.py", MTIME
                tar.addfile(info)
            if n % 97 == 0:
                info = tarfile.TarInfo(f"{d}/hard{n}")
                info.type, info.linkname, info.mtime = tarfile.LNKTYPE, f"{d}/file{n}.py", MTIME
                tar.addfile(info)
            written, n = written + size, n + 1
        if index > 0:  # whiteouts of the layer below: a file and a whole directory
            _add(tar, f"layer{index - 1}/pkg001/sub1/.wh.file1.py", b"")
            _add(tar, f"layer{index - 1}/pkg002/.wh..wh..opq", b"")
    size = raw.stat().st_size
    digest = hashlib.sha256()
    with open(raw, "rb") as src, gzip.open(out, "wb", compresslevel=1) as gz:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            gz.write(chunk)
    raw.unlink()
    return size, "sha256:" + digest.hexdigest()


def _blob(layout: Path, path: Path | None = None, data: bytes | None = None) -> tuple[str, int]:
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    if path is not None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        hexd, size = h.hexdigest(), path.stat().st_size
        os.link(path, blobs / hexd)
    else:
        assert data is not None
        hexd, size = hashlib.sha256(data).hexdigest(), len(data)
        (blobs / hexd).write_bytes(data)
    return "sha256:" + hexd, size


def _oci_layout(layout: Path, layers: list[Path], diff_ids: list[str]) -> None:
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    layer_descs = []
    for path in layers:
        digest, size = _blob(layout, path=path)
        layer_descs.append(
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size}
        )
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    cdigest, csize = _blob(layout, data=config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": cdigest,
                "size": csize,
            },
            "layers": layer_descs,
        }
    ).encode()
    mdigest, msize = _blob(layout, data=manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": mdigest,
                "size": msize,
                "annotations": {"org.opencontainers.image.ref.name": "bench"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))


def _time(fn: object, repeat: int, scratch: Path) -> float:
    times = []
    for _ in range(repeat):
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir()
        subprocess.run(["sync"], check=True)
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    shutil.rmtree(scratch)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=int, default=300, help="total uncompressed size (default 300)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the median is reported")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch space (default: a temp dir)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root (unpacking sets owners and device nodes)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-unpack-", dir=args.workdir))
    try:
        rng = random.Random(42)
        budget = (args.size_mb << 20) // args.layers
        blobs, diff_ids, total = [], [], 0
        for i in range(args.layers):
            path = work / f"layer{i}.tar.gz"
            size, diff_id = _layer(i, budget, rng, path)
            blobs.append(path)
            diff_ids.append(diff_id)
            total += size
        compressed = sum(p.stat().st_size for p in blobs)
        print(
            f"image: {args.layers} layers, {total / 1e6:.0f} MB uncompressed, "
            f"{compressed / 1e6:.0f} MB gzip; median of {args.repeat}"
        )
        rootfs = work / "rootfs"

        def ck_apply() -> None:
            for blob, diff_id in zip(blobs, diff_ids, strict=True):
                unpack_layer(blob, rootfs, whiteouts="apply", expected_diff_id=diff_id)

        def ck_overlay() -> None:
            for i, (blob, diff_id) in enumerate(zip(blobs, diff_ids, strict=True)):
                (rootfs / str(i)).mkdir()
                unpack_layer(blob, rootfs / str(i), expected_diff_id=diff_id)

        results = {
            "containerkit unpack_layer (apply, one rootfs)": _time(ck_apply, args.repeat, rootfs),
            "containerkit unpack_layer (overlay, dir per layer)": _time(ck_overlay, args.repeat, rootfs),
        }
        _oci_layout(work / "oci", blobs, diff_ids)

        def ck_load() -> None:
            # The whole path a user takes: verify every blob into the content store, unpack each
            # layer once into the snapshot store, record the image.
            with ck.Engine(root=rootfs / "engine", forkserver=False) as engine:
                engine.images.load(work / "oci", name="bench")

        results["containerkit Engine.images.load (ingest + unpack)"] = _time(ck_load, args.repeat, rootfs)
        skopeo = shutil.which("skopeo")
        if skopeo:

            def run_skopeo() -> None:
                subprocess.run(
                    [skopeo, "copy", "--quiet", f"oci:{work / 'oci'}:bench", f"oci:{rootfs / 'copy'}:bench"],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )

            results["skopeo copy oci: -> oci: (ingest, no unpack)"] = _time(run_skopeo, args.repeat, rootfs)
        umoci = shutil.which("umoci")
        if umoci:
            bundle = work / "bundle"

            def run_umoci() -> None:
                shutil.rmtree(bundle, ignore_errors=True)
                subprocess.run(
                    [umoci, "unpack", "--image", f"{work / 'oci'}:bench", str(bundle)],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )

            results["umoci unpack"] = _time(run_umoci, args.repeat, rootfs)
        else:
            print("umoci is not installed: no comparison")
        for name, seconds in results.items():
            print(f"  {name:52s} {seconds:7.2f} s  {total / seconds / 1e6:7.0f} MB/s")
        if umoci:
            base = results["umoci unpack"]
            for name, seconds in results.items():
                if name != "umoci unpack":
                    print(f"  {name:52s} {base / seconds:5.2f}x umoci's speed")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
