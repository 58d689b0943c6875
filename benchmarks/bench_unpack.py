"""Layer unpacking: containerkit's unpack_layer against ``umoci unpack`` and ``tar -x``, in one run.

Part one ("layer"): one layer of about 400 MB in about 20,000 files (directory order, as image
builders write them: small files, a few large ones, symlinks, hardlinks), gzip and plain, unpacked
by this unpack_layer, by the unpack_layer of ``--baseline`` (an earlier commit's
``containerkit/images/unpack.py``, loaded from git: before/after in the same run), by
``tar -x`` and by ``umoci unpack``; the runs of each repeat are interleaved so that load from
other work on the machine falls on all of them alike.

Part two ("image"): generates a layered image (many small files, some large ones, symlinks, hardlinks and
whiteouts in the upper layers), writes it as an OCI layout for umoci, then times

* umoci unpack (all layers applied into one rootfs, plus umoci's own mtree manifest);
* unpack_layer with ``whiteouts="apply"`` into one rootfs (the same job);
* unpack_layer with ``whiteouts="overlay"``, one directory per layer (what the snapshot store does);
* ``Engine.images.load`` of the OCI layout (verified ingest into the content store + unpack);
* ``skopeo copy`` of the same layout to another OCI layout (verified copy, no unpack).

Usage (as root): ``python benchmarks/bench_unpack.py [--part layer|image|all] [--layer-mb 400]
[--layer-files 20000] [--baseline REV] [--size-mb 300] [--layers 4] [--repeat 3] [--workdir DIR]``
(``--workdir /dev/shm`` takes the filesystem out: what is left is the unpacker's own cost).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
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
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import containerkit as ck
from containerkit.images.unpack import unpack_layer

BASELINE = "25521357686cdd9597cf0f101c8a2825b8c03c52"
"""The unpacker before directories were reached in one openat2 and owner/mode written only where needed."""
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
        kind = "tar+gzip" if path.name.endswith(".gz") else "tar"
        layer_descs.append(
            {"mediaType": f"application/vnd.oci.image.layer.v1.{kind}", "digest": digest, "size": size}
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


# --- part one: one big layer ------------------------------------------------------------------


class _Filler:
    """Bytes for file bodies, fast enough for 400 MB: half words (compressible), half random."""

    def __init__(self, rng: random.Random) -> None:
        self.text = b" ".join(rng.choice(WORDS) for _ in range(1 << 20))
        self.noise = rng.randbytes(8 << 20)
        self.rng = rng

    def take(self, size: int) -> bytes:
        half = size // 2
        t = self.rng.randrange(len(self.text) - half)
        n = self.rng.randrange(len(self.noise) - (size - half))
        return self.text[t : t + half] + self.noise[n : n + size - half]


def _entry(tar: tarfile.TarFile, name: str, kind: bytes, *, mode: int = 0o755, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.linkname = kind, mode, MTIME, link
    tar.addfile(info)


def _big_layer(out: Path, size_mb: int, files: int, rng: random.Random) -> tuple[int, str, int]:
    """A plain tar of about ``size_mb`` MB and ``files`` regular files, in directory order (a
    quarter of the bytes in a few large files, the rest in small ones, 20 to a directory, with a
    symlink per 10 files and a hardlink per 100). Returns (size, diff_id, entries)."""
    fill = _Filler(rng)
    budget = size_mb << 20
    small_budget = budget * 3 // 4
    mean = max(small_budget // files, 1)
    entries = 0
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("usr", "usr/lib", "usr/share", "opt"):
            _entry(tar, d, tarfile.DIRTYPE)
        written, n = 0, 0
        while n < files:
            d = f"usr/{'lib' if n % 40 < 20 else 'share'}/pkg{n // 200:03d}/sub{(n // 20) % 10}"
            if n % 200 == 0:
                _entry(tar, d.rsplit("/", 1)[0], tarfile.DIRTYPE)
            if n % 20 == 0:
                _entry(tar, d, tarfile.DIRTYPE)
                entries += 1
            size = min(int(rng.expovariate(1 / mean)) + 1, 1 << 20)
            _add(tar, f"{d}/file{n}.py", fill.take(size))
            if n % 10 == 5:
                _entry(tar, f"{d}/link{n}", tarfile.SYMTYPE, mode=0o777, link=f"file{n}.py")
                entries += 1
            if n % 100 == 7:
                _entry(tar, f"{d}/hard{n}", tarfile.LNKTYPE, mode=0o644, link=f"{d}/file{n}.py")
                entries += 1
            written, n, entries = written + size, n + 1, entries + 1
        _entry(tar, "opt/big", tarfile.DIRTYPE)
        while written < budget:
            size = min(rng.randint(8 << 20, 24 << 20), budget - written)
            _add(tar, f"opt/big/blob{n}.bin", fill.take(size), 0o755)
            written, n, entries = written + size, n + 1, entries + 1
    digest = hashlib.sha256()
    with open(out, "rb") as src:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
    return out.stat().st_size, "sha256:" + digest.hexdigest(), entries


def _gzip(src: Path, out: Path) -> None:
    with open(src, "rb") as raw, gzip.open(out, "wb", compresslevel=1) as gz:
        while chunk := raw.read(1 << 20):
            gz.write(chunk)


def _load_baseline(rev: str) -> ModuleType | None:
    """``containerkit/images/unpack.py`` as it was at ``rev``, imported under another name."""
    repo = Path(__file__).resolve().parent.parent
    try:
        text = subprocess.run(
            ["git", "-C", str(repo), "show", f"{rev}:containerkit/images/unpack.py"],
            check=True,
            capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        print(f"no baseline: cannot read unpack.py at {rev}: {err}", file=sys.stderr)
        return None
    path = Path(tempfile.mkdtemp(prefix="bench-unpack-baseline-")) / "unpack_baseline.py"
    path.write_bytes(text)
    spec = importlib.util.spec_from_file_location("_unpack_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shutil.rmtree(path.parent)
    return module


def _interleaved(fns: dict[str, Callable[[Path], None]], repeat: int, scratch: Path) -> dict[str, float]:
    """Median seconds of each ``fn(dest)``; every repeat runs each once, into a fresh ``dest``."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir()
            subprocess.run(["sync"], check=True)
            start = time.perf_counter()
            fn(scratch)
            times[name].append(time.perf_counter() - start)
    shutil.rmtree(scratch, ignore_errors=True)
    return {name: statistics.median(values) for name, values in times.items()}


def _part_layer(args: argparse.Namespace, work: Path) -> None:
    rng = random.Random(7)
    plain = work / "big.tar"
    size, diff_id, entries = _big_layer(plain, args.layer_mb, args.layer_files, rng)
    gz = work / "big.tar.gz"
    _gzip(plain, gz)
    print(
        f"layer: {entries} entries, {size / 1e6:.0f} MB tar, {gz.stat().st_size / 1e6:.0f} MB gzip; "
        f"median of {args.repeat}, in {work}"
    )
    baseline = _load_baseline(args.baseline)
    umoci = shutil.which("umoci")
    tar = shutil.which("tar")
    for label, blob in (("gzip", gz), ("plain", plain)):
        fns: dict[str, Callable[[Path], None]] = {}

        def ours(dest: Path, blob: Path = blob) -> None:
            unpack_layer(blob, dest, expected_diff_id=diff_id)

        fns["containerkit unpack_layer"] = ours
        if baseline is not None:

            def before(dest: Path, blob: Path = blob, old: ModuleType = baseline) -> None:
                old.unpack_layer(blob, dest, expected_diff_id=diff_id)

            fns[f"containerkit unpack_layer @ {args.baseline[:10]}"] = before
        if tar:

            def run_tar(dest: Path, blob: Path = blob) -> None:
                # as root, GNU tar keeps owners and modes (the same job); -z runs gzip in a second process
                flags = "-xzf" if blob.suffix == ".gz" else "-xf"
                subprocess.run([tar, "--numeric-owner", "-p", flags, str(blob), "-C", str(dest)], check=True)

            fns["tar -x"] = run_tar
        if umoci:
            layout = work / f"oci-{label}"
            if not layout.exists():
                _oci_layout(layout, [blob], [diff_id])

            def run_umoci(dest: Path, layout: Path = layout) -> None:
                subprocess.run(
                    [umoci, "unpack", "--image", f"{layout}:bench", str(dest / "bundle")],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )

            fns["umoci unpack"] = run_umoci
        results = _interleaved(fns, args.repeat, work / "dest")
        ours_s = results["containerkit unpack_layer"]
        print(f" {label}:")
        for name, seconds in results.items():
            ratio = (
                ""
                if name == "containerkit unpack_layer"
                else f"  containerkit {seconds / ours_s:5.2f}x faster"
            )
            print(f"  {name:52s} {seconds:7.2f} s  {size / seconds / 1e6:7.0f} MB/s{ratio}")


# --- part two: a layered image -----------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--part", choices=("layer", "image", "all"), default="all")
    parser.add_argument("--layer-mb", type=int, default=400, help="part one's layer size (default 400)")
    parser.add_argument(
        "--layer-files", type=int, default=20000, help="part one's regular files (default 20000)"
    )
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the unpacker to compare with")
    parser.add_argument("--size-mb", type=int, default=300, help="part two's image size (default 300)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the median is reported")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch space (default: a temp dir)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root (unpacking sets owners and device nodes)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-unpack-", dir=args.workdir))
    try:
        if args.part in ("layer", "all"):
            _part_layer(args, work)
        if args.part == "layer":
            return 0
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
