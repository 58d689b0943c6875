"""SnapshotStore with both drivers: the same layers must show the same trees."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerkit.errors import Conflict, InvalidArgument, NotFound
from containerkit.linux import _libc, overlay
from containerkit.storage.apply import apply_layer
from containerkit.storage.snapshots import RootfsMount, SnapshotStore
from tests.conftest import require_root
from tests.images import _layers as lf

LAYER1 = [lf.file("a/x", b"x"), lf.file("a/y", b"y"), lf.file("b/z", b"z")]
LAYER2 = [lf.whiteout("a/x"), lf.opaque("b"), lf.file("b/new", b"new")]


def _mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p.startswith(str(root) + "/")]


@pytest.fixture(params=["overlay", "copy"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SnapshotStore]:
    require_root()
    if request.param == "overlay" and not overlay.overlay_supported(tmp_path):
        pytest.skip("overlayfs cannot be mounted here")
    s = SnapshotStore(tmp_path / "store", driver=request.param)
    yield s
    for point in reversed(_mounts_under(tmp_path)):
        overlay.unmount(point)
    assert not _mounts_under(tmp_path)


@pytest.fixture
def mnt(tmp_path: Path) -> Path:
    path = tmp_path / "mnt"
    path.mkdir()
    return path


def _add(store: SnapshotStore, *layers: list[lf.Entry]) -> list[str]:
    tars = [lf.build_tar(entries) for entries in layers]
    chains = lf.chain_ids([lf.diff_id(t) for t in tars])
    for chain, tar in zip(chains, tars, strict=True):
        apply_layer(store, chain, io.BytesIO(lf.compress(tar, "gzip")), expected_diff_id=lf.diff_id(tar))
    return chains[::-1]  # top-most first, as prepare wants


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in root.rglob("*"))


def test_whiteouts_show_the_expected_tree(store: SnapshotStore) -> None:
    parents = _add(store, LAYER1, LAYER2)
    store.prepare("c1", parents)
    merged = store.mount("c1")
    try:
        assert _files(merged) == ["a/", "a/y", "b/", "b/new"]
        assert (merged / "b/new").read_bytes() == b"new"
    finally:
        store.unmount(merged)


def test_the_runtime_can_mount_what_prepare_returns(store: SnapshotStore, mnt: Path) -> None:
    parents = _add(store, LAYER1, LAYER2)
    m = store.prepare("c1", parents)
    assert m == store.mounts("c1")
    oci = json.loads(json.dumps(m.to_oci()))
    assert set(oci) == {"type", "source", "options"}
    if store.driver == "overlay":
        assert oci["type"] == "overlay"
        lower = next(o for o in oci["options"] if o.startswith("lowerdir="))
        dirs = lower.removeprefix("lowerdir=").split(":")
        assert [os.path.realpath(d) for d in dirs] == [str(store.layer_dir(p)) for p in parents]
        _libc.libc.mount(oci["source"], str(mnt), "overlay", 0, ",".join(oci["options"]))
    else:
        assert oci == {"type": "bind", "source": oci["source"], "options": ["rbind", "rw"]}
        overlay.bind_mount(oci["source"], mnt)
    try:
        assert _files(mnt) == ["a/", "a/y", "b/", "b/new"]
    finally:
        overlay.unmount(mnt)


def test_prepare_returns_what_mounts_reads_back(store: SnapshotStore) -> None:
    """prepare builds its answer from what it wrote; mounts reads the snapshot's files."""
    parents = _add(store, LAYER1, LAYER2)
    cases = {"plain": (parents, None), "empty": ([], None), "mapped": (parents, (100000, 100000))}
    for key, (chain, offset) in cases.items():
        made = store.prepare(key, chain, id_offset=offset)
        assert made == store.mounts(key), key
    assert store.mounts("plain").type == ("overlay" if store.driver == "overlay" else "bind")
    assert store.mounts("mapped").idmap_lowers == (store.driver == "overlay" and store.idmap_lowers)


def test_writes_stay_in_the_snapshot(store: SnapshotStore) -> None:
    parents = _add(store, LAYER1)
    store.prepare("c1", parents)
    store.prepare("c2", parents)
    before = store.usage("c1")
    one = store.mount("c1")
    two = store.mount("c2")
    try:
        (one / "big").write_bytes(os.urandom(1 << 20))
        (one / "a/y").write_bytes(b"changed")
        (one / "a/x").unlink()
        assert (two / "a/y").read_bytes() == b"y" and (two / "a/x").exists()
        assert not (two / "big").exists()
        assert store.usage("c1") >= max(before, 1 << 20)
    finally:
        store.unmount(one)
        store.unmount(two)
    assert (store.layer_dir(parents[0]) / "a/y").read_bytes() == b"y"
    assert (store.layer_dir(parents[0]) / "a/x").exists()


def test_metadata_survives_both_drivers(store: SnapshotStore) -> None:
    layer1 = [
        lf.directory("d", 0o2750, uid=1000, gid=2000, xattrs={"user.dir": b"1"}),
        lf.file("d/suid", b"s" * 5000, 0o4755, xattrs={"user.file": b"\x00\xff"}),
        lf.hardlink("d/suid-link", "d/suid"),
        lf.symlink("d/abs", "/etc/shadow"),
        lf.device("dev/null", tarfile.CHRTYPE, 1, 3, 0o666),
        lf.device("dev/fifo", tarfile.FIFOTYPE, mode=0o620),
        lf.file("old", b"replaced later"),
        lf.symlink("lib", "usr/lib"),
        lf.file("usr/lib/libc.so", b"libc"),
    ]
    layer2 = [lf.file("old", b"new", 0o600, uid=7), lf.file("lib/own.so", b"own")]
    store.prepare("c1", _add(store, layer1, layer2))
    merged = store.mount("c1")
    try:
        tree = lf.describe(merged)
        assert os.stat(merged / "d/suid").st_ino == os.stat(merged / "d/suid-link").st_ino
    finally:
        store.unmount(merged)
    assert tree["d"][1:4] == (0o2750, 1000, 2000) and tree["d"][5] == (("user.dir", b"1"),)
    assert tree["d/suid"][1] == 0o4755 and tree["d/suid"][5] == (("user.file", b"\x00\xff"),)
    assert tree["d/abs"][4] == "/etc/shadow"
    assert tree["dev/null"][0] == stat.S_IFCHR and tree["dev/null"][4] == (1, 3)
    assert tree["dev/fifo"][0] == stat.S_IFIFO
    assert tree["old"][1:4] == (0o600, 7, 0)
    assert tree["lib"][0] == stat.S_IFDIR and "lib/own.so" in tree and "lib/libc.so" not in tree
    assert tree["usr/lib/libc.so"][0] == stat.S_IFREG


def test_both_drivers_show_identical_trees(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    require_root()
    if not overlay.overlay_supported(tmp_path):
        pytest.skip("overlayfs cannot be mounted here")
    layers = [list(_busybox_entries(busybox_rootfs_tar)), LAYER1, LAYER2, [lf.whiteout("bin/ls")]]
    trees = []
    for driver in ("overlay", "copy"):
        s = SnapshotStore(tmp_path / driver, driver=driver)
        s.prepare("c", _add(s, *layers))
        merged = s.mount("c")
        try:
            trees.append(lf.describe(merged))
        finally:
            s.unmount(merged)
    assert trees[0] == trees[1]
    assert "bin/ls" not in trees[0] and "bin/busybox" in trees[0]


def _busybox_entries(path: Path) -> Iterator[lf.Entry]:
    with tarfile.open(path) as tar:
        for member in tar:
            src = tar.extractfile(member)
            yield member, src.read() if src else None


def test_busybox_runs_in_a_snapshot(store: SnapshotStore, busybox_rootfs_tar: Path) -> None:
    chain = lf.diff_id(busybox_rootfs_tar.read_bytes())
    apply_layer(store, chain, busybox_rootfs_tar)
    store.prepare("c1", [chain])
    merged = store.mount("c1")
    try:
        out = subprocess.run(
            ["chroot", str(merged), "/bin/sh", "-c", "echo hi > /tmp/f && cat /tmp/f"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout == "hi\n"
    finally:
        store.unmount(merged)


def test_add_layer_is_idempotent_and_lists(store: SnapshotStore, busybox_rootfs_tar: Path) -> None:
    chain = lf.diff_id(busybox_rootfs_tar.read_bytes())
    first = apply_layer(store, chain, busybox_rootfs_tar)
    again = apply_layer(store, chain, io.BytesIO(b"not even read"))
    assert first == again == store.layer_info(chain)
    assert store.has_layer(chain) and store.list_layers() == [chain]
    assert os.listdir(store.root / "tmp") == []


def test_concurrent_add_of_the_same_layer(store: SnapshotStore, busybox_rootfs_tar: Path) -> None:
    chain = lf.diff_id(busybox_rootfs_tar.read_bytes())
    code = (
        "import sys; from pathlib import Path; from containerkit.storage.snapshots import SnapshotStore;"
        "from containerkit.storage.apply import apply_layer;"
        "s = SnapshotStore(Path(sys.argv[1])); print(apply_layer(s, sys.argv[2], Path(sys.argv[3])).diff_id)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(store.root), chain, str(busybox_rootfs_tar)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4
    assert outs == [chain] * 4
    assert store.list_layers() == [chain]
    assert os.listdir(store.root / "tmp") == []
    assert (store.layer_dir(chain) / "bin/busybox").stat().st_size > 0


def test_remove_and_errors(store: SnapshotStore, mnt: Path) -> None:
    parents = _add(store, LAYER1, LAYER2)
    with pytest.raises(NotFound, match="sha256:" + "f" * 64):
        store.prepare("c1", ["sha256:" + "f" * 64])
    with pytest.raises(InvalidArgument, match="snapshot key"):
        store.prepare("../evil", parents)
    with pytest.raises(InvalidArgument, match="chain id"):
        store.has_layer("nope")
    store.prepare("c1", parents)
    with pytest.raises(Conflict, match="c1"):
        store.prepare("c1", parents)
    with pytest.raises(Conflict, match="c1"):
        store.remove_layer(parents[0])
    merged = store.mount("c1")
    (merged / "file").write_text("x")
    store.remove("c1")  # unmounts merged/ first
    assert not overlay.is_mountpoint(merged) and not merged.exists()
    with pytest.raises(NotFound):
        store.remove("c1")
    for chain in parents:
        store.remove_layer(chain)
    assert store.list_layers() == []
    for sub in ("layers", "meta", "l", "snapshots", "tmp"):
        assert os.listdir(store.root / sub) == [], sub


@pytest.mark.parametrize("driver", ["overlay", "copy"])
def test_many_layers_fit_in_one_mount(driver: str) -> None:
    """120 layers under a short root (like /var/lib/containerkit) fit in one page of options."""
    require_root()
    root = Path(tempfile.mkdtemp(prefix="ck", dir="/tmp"))
    try:
        if driver == "overlay" and not overlay.overlay_supported(root):
            pytest.skip("overlayfs cannot be mounted here")
        store = SnapshotStore(root, driver=driver)  # type: ignore[arg-type]
        parents = _add(store, *[[lf.file(f"f{i}", str(i).encode())] for i in range(120)])
        m = store.prepare("c1", parents)
        assert len(",".join(m.options)) < 4096
        merged = store.mount("c1")
        try:
            assert sorted(os.listdir(merged)) == sorted(f"f{i}" for i in range(120))
            assert (merged / "f7").read_bytes() == b"7"
        finally:
            store.unmount(merged)
    finally:
        shutil.rmtree(root)


def test_too_many_layers_for_one_page_is_a_clear_error(tmp_path: Path) -> None:
    require_root()
    store = SnapshotStore(tmp_path / ("long-" * 20), driver="overlay")
    parents = _add(store, *[[lf.file(f"f{i}", b"")] for i in range(60)])
    with pytest.raises(InvalidArgument, match="60 layers"):
        store.prepare("c1", parents)
    assert store.list_snapshots() == [] and os.listdir(store.root / "tmp") == []


def test_empty_parents_and_single_layer(store: SnapshotStore) -> None:
    m = store.prepare("scratch", [])
    assert m.type == "bind"
    merged = store.mount("scratch")
    try:
        (merged / "f").write_text("x")
        assert store.usage("scratch") > 0
    finally:
        store.unmount(merged)


def test_driver_is_recorded_once(tmp_path: Path) -> None:
    require_root()
    SnapshotStore(tmp_path / "s", driver="copy")
    assert SnapshotStore(tmp_path / "s").driver == "copy"
    with pytest.raises(Conflict, match="copy"):
        SnapshotStore(tmp_path / "s", driver="overlay")
    probed = SnapshotStore(tmp_path / "p")
    assert probed.driver == ("overlay" if overlay.overlay_supported(tmp_path) else "copy")
    assert os.listdir(probed.root / "tmp") == []
    assert RootfsMount("bind", "/x", ("rbind", "rw")).to_oci() == {
        "type": "bind",
        "source": "/x",
        "options": ["rbind", "rw"],
    }
    shutil.rmtree(tmp_path / "s")


def test_a_background_remove_is_gone_at_once_and_deleted_by_the_drain(store: SnapshotStore) -> None:
    """``remove(wait=False)`` and ``discard_dir``: unreachable at once (renamed into the trash),
    the files deleted by a background thread that ``drain`` waits for."""
    before = set(threading.enumerate())  # other tests' stores may have lingering threads
    parents = _add(store, LAYER1)
    store.prepare("c1", parents)
    state_dir = store.root.parent / "state-c1"
    (state_dir / "bundle").mkdir(parents=True)
    (state_dir / "bundle" / "config.json").write_text("{}")
    store.remove("c1", wait=False)
    store.discard_dir(state_dir)
    assert store.list_snapshots() == [] and not state_dir.exists()
    store.drain()
    assert os.listdir(store.root / "tmp") == []
    assert not any(t.name == "containerkit-trash" for t in set(threading.enumerate()) - before)
    store.remove_layer(parents[0])
