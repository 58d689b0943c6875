"""The snapshot store: layers unpacked once and shared, plus one writable snapshot per container.

Vocabulary follows containerd's snapshotter. A *layer* is identified by its chain id (the
image-spec ``ChainID``: it names the layer *and* everything below it) and is immutable once
added. A *snapshot* is the writable rootfs of one container, named by ``key``, made from a stack
of layers (``parents``, top-most first). :meth:`SnapshotStore.prepare` returns a
:class:`RootfsMount`; the runtime mounts it (the store never needs to), and :meth:`mount` is only
for host-side access (copying files in or out, inspecting).

Importing a layer (containerd's prepare / apply / commit; the store never reads a tar: the diff
applier, :func:`containerkit.storage.apply.apply_layer`, does these three steps)::

    stage = store.prepare_layer(chain_id)      # an empty staging dir in tmp/
    result = unpack_layer(blob, stage.path, whiteouts=stage.whiteouts, ...)
    store.commit_layer(stage, result)          # metadata, then one rename into layers/
    store.abort_layer(stage)                   # in a finally: removes whatever is left

and back (the diff maker, :mod:`containerkit.storage.diff`)::

    make_diff(store, "ctr-1234", out)          # what the container changed, as a layer tar

Running a container::

    m = store.prepare("ctr-1234", parents=[top_chain_id, ..., base_chain_id])
    bundle_config["root"] = m.to_oci()  # the runtime mounts it
    ...
    store.remove("ctr-1234")  # after the container is gone

On disk (``root`` must be one filesystem, so every rename is atomic)::

    driver                     "overlay" or "copy", chosen once per store
    layers/<chain-id-hex>/     unpacked content; an overlay lower dir
    meta/<chain-id-hex>.json   diff_id, size, whiteouts (written before the content appears)
    meta/<hex>.tar-split.gz    the layer tar's headers, to write it again from layers/<hex>/
    l/<12 hex>                 -> ../layers/<chain-id-hex>: short names for lowerdir=
    snapshots/<key>/           parents.json, upper/ work/ [merged/]  (copy driver: rootfs/)
                               [userns.json: a user-namespaced container's id offset]
    shifted/<uid>-<gid>/<hex>  layers chowned for one id range, where overlay cannot idmap them
    tmp/                       staging: unpacks and removals happen here, then rename

Two drivers, same tree. ``overlay`` unpacks layers with overlay whiteouts (0/0 char devices,
``trusted.overlay.opaque``) and stacks them. ``copy`` is the fallback where overlay cannot be
mounted (probed once per store; or ``driver="copy"``): layers are unpacked with whiteouts applied
and recorded in ``meta/``, and :meth:`prepare` builds a private full copy of the rootfs, served as
a bind mount. The copy driver costs disk and time per container; it exists for hosts and nested
setups (a store on overlayfs, no ``CAP_SYS_ADMIN``) where overlay is unavailable.

Overlay option strings must fit in one page (4096 bytes). Lower dirs are named through the short
absolute symlinks in ``l/`` (as docker's overlay2 does), about ``len(root) + 16`` bytes a layer, so
a store under ``/var/lib/containerkit`` stacks over 100 layers; absolute paths (not relative ones
with a ``chdir``) keep the mount usable by any runtime, in any process. Beyond a page,
:meth:`prepare` raises :class:`~containerkit.errors.InvalidArgument` naming the layer count.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from containerkit._model import model
from containerkit.errors import Conflict, IntegrityError, InvalidArgument, NotFound
from containerkit.images.unpacked import DEFAULT_MAX_BYTES, UnpackResult
from containerkit.linux import idmap, overlay, staging
from containerkit.storage._apply import apply_layer_dir
from containerkit.storage.trash import Trash

__all__ = [
    "Driver",
    "LayerStage",
    "RootfsMount",
    "SnapshotChanges",
    "SnapshotStore",
    "copy_shifted",
    "shift_ownership",
]

Driver = Literal["overlay", "copy"]

_CHAIN_RE = re.compile(r"^sha256:([0-9a-f]{64})$")
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_LINK_LEN = 12
_STALE_TMP_SECONDS = 24 * 3600
_TRASH_PREFIX = "trash-"
"""Names of dirs renamed into tmp/ to be deleted (see ``_discard``)."""
_OVERLAY_EXTRA = ("index=off",)
_USERNS_FILE = "userns.json"  # a user-namespaced snapshot: {"offset": [uid, gid], "shifted": bool}


@model
class RootfsMount:
    """How to mount a snapshot as a container's root: what the runtime receives (as JSON)."""

    type: Literal["overlay", "bind"]
    source: str
    options: tuple[str, ...]
    idmap_lowers: bool = False
    """The runtime must idmap each lower dir into the container's user namespace."""

    def to_oci(self) -> dict[str, Any]:
        """The OCI runtime-spec mount fields (``destination`` is the runtime's to choose), and
        ``idmapLowers`` when set."""
        fields: dict[str, Any] = {"type": self.type, "source": self.source, "options": list(self.options)}
        if self.idmap_lowers:
            fields["idmapLowers"] = True
        return fields


@attrs.define
class LayerStage:
    """A layer being made: fill ``path`` (unpacking with ``whiteouts``), then commit or abort."""

    chain_id: str
    path: Path
    whiteouts: Literal["overlay", "apply"]
    """How whiteouts must be written: overlay char devices, or applied to the lower content."""
    _stage: Path
    _held: int


@model
class SnapshotChanges:
    """Where a snapshot's changes are, for the diff maker. Overlay: ``upper`` is the upper dir
    (the change set) and ``lower_root`` the top parent layer's dir (None without parents).
    Copy: ``upper`` is the snapshot's whole tree and ``lower_tree`` the tree its parents make,
    built for this diff. ``id_offset``: a user-namespaced snapshot holds host ids."""

    upper: Path
    id_offset: tuple[int, int]
    lower_root: Path | None = None
    lower_tree: Path | None = None
    lowers: tuple[Path, ...] = ()
    """Overlay: every parent layer's dir, top first (what a path was before the container)."""


def _chain_hex(chain_id: str) -> str:
    match = _CHAIN_RE.match(chain_id) if isinstance(chain_id, str) else None
    if not match:
        raise InvalidArgument(f"chain id must look like sha256:<64 hex>, got {chain_id!r}")
    return match.group(1)


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise InvalidArgument(f"invalid snapshot key {key!r} (letters, digits, '_', '.', '-'; max 128)")
    return key


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _disk_usage(path: Path) -> int:
    """Bytes allocated under ``path`` (hardlinks once, symlinks never followed), like ``du -s``."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [str(path)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
    return total


def shift_ownership(root: Path, uid_offset: int, gid_offset: int) -> None:
    """Add the offsets to the owner of every file under ``root`` (symlinks not followed).

    A chown clears setuid/setgid bits, so each non-symlink's mode is set again afterwards.
    """
    stack = [str(root)]
    st = os.lstat(root)
    os.lchown(root, st.st_uid + uid_offset, st.st_gid + gid_offset)
    os.chmod(root, stat.S_IMODE(st.st_mode))
    linked: set[tuple[int, int]] = set()
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                    if (st.st_dev, st.st_ino) in linked:  # a hardlink: shifted once already
                        continue
                    linked.add((st.st_dev, st.st_ino))
                os.lchown(entry.path, st.st_uid + uid_offset, st.st_gid + gid_offset)
                if not stat.S_ISLNK(st.st_mode):
                    os.chmod(entry.path, stat.S_IMODE(st.st_mode))
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)


def copy_shifted(source: Path, target: Path, uid_offset: int, gid_offset: int) -> None:
    """Copy a layer dir (whiteout devices, opaque xattrs, hardlinks and all) to the new ``target``
    with every owner moved by the offsets (setuid/setgid bits kept)."""
    linked: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, os.stat_result]] = []

    def own(path: str, st: os.stat_result) -> None:
        os.lchown(path, st.st_uid + uid_offset, st.st_gid + gid_offset)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(path, stat.S_IMODE(st.st_mode))

    os.mkdir(target)
    shutil.copystat(source, target, follow_symlinks=False)  # with xattrs (trusted.overlay.*)
    dirs.append((str(target), os.lstat(source)))
    stack = [(str(source), str(target))]
    while stack:
        src_dir, dst_dir = stack.pop()
        with os.scandir(src_dir) as it:
            for entry in it:
                src, dst = entry.path, os.path.join(dst_dir, entry.name)
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.mkdir(dst)
                    shutil.copystat(src, dst, follow_symlinks=False)
                    dirs.append((dst, st))
                    stack.append((src, dst))
                    continue
                if st.st_nlink > 1 and (st.st_dev, st.st_ino) in linked:
                    os.link(linked[(st.st_dev, st.st_ino)], dst)
                    continue
                if stat.S_ISREG(st.st_mode):
                    shutil.copy2(src, dst, follow_symlinks=False)
                elif stat.S_ISLNK(st.st_mode):
                    os.symlink(os.readlink(src), dst)
                else:  # devices (whiteouts among them), fifos, sockets
                    os.mknod(dst, st.st_mode, st.st_rdev)
                own(dst, st)
                if st.st_nlink > 1:
                    linked[(st.st_dev, st.st_ino)] = dst
    for path, st in reversed(dirs):  # last: a chmod may take away our own write access
        own(path, st)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


class SnapshotStore:
    """Layers shared by chain id and writable snapshots by key, under one ``root`` directory.

    Several processes may use one root at once: every change is staged in ``tmp/`` and
    renamed into place, and two processes adding the same layer both succeed (one copy wins).
    """

    def __init__(
        self, root: Path, *, driver: Driver | None = None, max_layer_bytes: int | None = DEFAULT_MAX_BYTES
    ) -> None:
        if driver not in (None, "overlay", "copy"):
            raise InvalidArgument(f"snapshot driver must be 'overlay' or 'copy', got {driver!r}")
        self.root = Path(os.path.abspath(root))
        if "," in str(self.root) or ":" in str(self.root):
            raise InvalidArgument(f"snapshot store root {self.root} must not contain ',' or ':'")
        for sub in ("layers", "meta", "l", "snapshots", "tmp"):
            (self.root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        self._tmp = self.root / "tmp"
        self._trash = Trash()
        self.max_layer_bytes = max_layer_bytes
        self.driver: Driver = self._choose_driver(driver)
        # Overlay over idmapped lowers for user-namespaced containers; else (an older kernel, a
        # filesystem without idmapped mounts) chowned copies of the layers, one per id range.
        self.idmap_lowers = idmap.overlay_lowers_supported(self.root)
        self._reap_stale_tmp()

    # --- driver -------------------------------------------------------------------------------

    def _choose_driver(self, wanted: Driver | None) -> Driver:
        """Read the store's driver, or probe (once, for every process) and record it."""
        path = self.root / "driver"
        if not path.exists():
            if wanted is not None:
                choice: Driver = wanted
            else:
                choice = "overlay" if overlay.overlay_supported(self._tmp) else "copy"
            fd, tmp = tempfile.mkstemp(prefix=".driver.", dir=self.root)
            try:
                os.write(fd, choice.encode())
                os.close(fd)
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)  # first writer wins
            finally:
                os.unlink(tmp)
        recorded = path.read_text().strip()
        if recorded not in ("overlay", "copy"):
            raise InvalidArgument(f"{path}: unknown snapshot driver {recorded!r}")
        if wanted is not None and wanted != recorded:
            raise Conflict(f"snapshot store {self.root} uses the {recorded} driver, not {wanted}")
        return "overlay" if recorded == "overlay" else "copy"

    def reap_staging(self) -> list[str]:
        """Remove the staging and trash dirs of processes that are gone (a crash mid-unpack or
        mid-remove); those of live processes stay. The names removed.

        A trash dir goes whatever its age: it was already unreachable when it got its name, and
        a live process deleting it at the same time only shares the work.
        """
        removed = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self._tmp):
                if entry.name.startswith(_TRASH_PREFIX) and entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed.append(entry.name)
        return removed + staging.reap(self._tmp)

    def _reap_stale_tmp(self) -> None:
        """Remove staging dirs a crashed process left (old enough that nobody still writes there)."""
        cutoff = time.time() - _STALE_TMP_SECONDS
        for entry in os.scandir(self._tmp):
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    shutil.rmtree(entry.path)

    def _discard(self, path: Path, *, wait: bool = True) -> None:
        """Rename ``path`` into tmp/ (atomic: it is gone at once), then delete it (``wait=False``:
        in the background, see :mod:`~containerkit.storage.trash`).

        Renamed to a fresh random name rather than into a ``mkdtemp`` directory: on a disk where
        a mkdir/rmdir pair costs a millisecond or more, that halves the fixed cost of a remove.
        """
        trash = self._tmp / f"{_TRASH_PREFIX}{path.name[:32]}-{secrets.token_hex(8)}"
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # another filesystem (a directory of the caller's)
                raise
            shutil.rmtree(path, ignore_errors=True)
            return
        if wait:
            shutil.rmtree(trash, ignore_errors=True)
        else:
            self._trash.delete(trash)

    def discard_dir(self, path: Path) -> None:
        """Make ``path``, a directory of the same engine root that nothing refers to any more,
        unreachable now and delete it in the background (a container's state dir)."""
        self._discard(Path(path), wait=False)

    def drain(self) -> None:
        """Wait for the background deletions (``remove(..., wait=False)``, :meth:`discard_dir`)."""
        self._trash.drain()

    # --- layers -------------------------------------------------------------------------------

    def layer_dir(self, chain_id: str) -> Path:
        """Where the layer's content is (or would be): an overlay lower dir."""
        return self.root / "layers" / _chain_hex(chain_id)

    def has_layer(self, chain_id: str) -> bool:
        return self.layer_dir(chain_id).is_dir()

    def list_layers(self) -> list[str]:
        """Chain ids of every layer in the store, sorted."""
        return sorted(
            f"sha256:{name}"
            for name in os.listdir(self.root / "layers")
            if re.fullmatch(r"[0-9a-f]{64}", name)
        )

    def _meta_path(self, hexid: str) -> Path:
        return self.root / "meta" / f"{hexid}.json"

    def tarsplit_path(self, chain_id: str) -> Path:
        """The layer's tar-split (:mod:`containerkit.storage.tarsplit`): with it, the layer tar is
        written again from the layer dir and its blob need not be kept."""
        return self.root / "meta" / f"{_chain_hex(chain_id)}.tar-split.gz"

    def has_tarsplit(self, chain_id: str) -> bool:
        return self.has_layer(chain_id) and self.tarsplit_path(chain_id).is_file()

    def _link_path(self, hexid: str) -> Path:
        return self.root / "l" / hexid[:_LINK_LEN]

    def layer_info(self, chain_id: str) -> UnpackResult:
        """What unpacking the layer found (diff_id, size, whiteouts)."""
        hexid = _chain_hex(chain_id)
        if not self.has_layer(chain_id):
            raise NotFound(f"layer {chain_id} is not in the snapshot store")
        data = json.loads(self._meta_path(hexid).read_text())
        return UnpackResult(
            diff_id=data["diff_id"],
            size=int(data["size"]),
            whiteouts=tuple(data.get("whiteouts", ())),
            opaque_dirs=tuple(data.get("opaque_dirs", ())),
        )

    def _publish_link(self, hexid: str) -> None:
        link = self._link_path(hexid)
        target = f"../layers/{hexid}"
        with contextlib.suppress(FileNotFoundError):
            existing = os.readlink(link)
            if existing == target:
                return
            raise Conflict(f"short layer name {link.name} is taken by {existing} (wanted for {hexid})")
        tmp = self._tmp / f".link-{hexid}-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(target, tmp)
        os.replace(tmp, link)

    def prepare_layer(self, chain_id: str) -> LayerStage:
        """An empty staging dir to fill with layer ``chain_id`` and then :meth:`commit_layer`.

        The dir is in ``tmp/`` and held by this process (recovery removes it once the process is
        gone); :meth:`abort_layer` removes it, so call that in a ``finally`` whatever happened.
        """
        hexid = _chain_hex(chain_id)
        stage = Path(
            tempfile.mkdtemp(prefix=f"layer-{hexid[:_LINK_LEN]}{staging.owner_tag()}", dir=self._tmp)
        )
        held = staging.hold_dir(stage)
        content = stage / "fs"
        try:
            content.mkdir()
            content.chmod(0o755)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            os.close(held)
            raise
        whiteouts: Literal["overlay", "apply"] = "overlay" if self.driver == "overlay" else "apply"
        return LayerStage(chain_id=chain_id, path=content, whiteouts=whiteouts, stage=stage, held=held)

    def commit_layer(
        self, stage: LayerStage, result: UnpackResult, *, expected_diff_id: str | None = None
    ) -> UnpackResult:
        """Make the filled ``stage`` layer ``stage.chain_id``: its metadata first, then the content
        by one rename. If another process committed the same layer first, the stored result is
        returned (checked against ``expected_diff_id``) and this copy is left for :meth:`abort_layer`.
        """
        chain_id = stage.chain_id
        hexid = _chain_hex(chain_id)
        overlay.syncfs(stage.path)
        meta = attrs.asdict(result, value_serializer=lambda _i, _a, v: list(v) if isinstance(v, tuple) else v)
        _write_atomic(self._meta_path(hexid), json.dumps({"chain_id": chain_id, **meta}).encode())
        self._publish_link(hexid)
        try:
            os.rename(stage.path, self.layer_dir(chain_id))
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            return self.check_layer(chain_id, expected_diff_id)  # lost a race: same layer
        _fsync_dir(self.root / "layers")
        return result

    def abort_layer(self, stage: LayerStage) -> None:
        """Remove what is left of ``stage`` (all of it, unless it was committed). Idempotent."""
        if stage._held < 0:
            return
        shutil.rmtree(stage._stage, ignore_errors=True)
        os.close(stage._held)
        stage._held = -1

    def check_layer(self, chain_id: str, expected_diff_id: str | None = None) -> UnpackResult:
        """The stored layer's info, checked against ``expected_diff_id`` when one is given."""
        info = self.layer_info(chain_id)
        if expected_diff_id is not None and info.diff_id != expected_diff_id:
            raise IntegrityError(
                f"layer {chain_id}: stored diff_id {info.diff_id} does not match expected {expected_diff_id}"
            )
        return info

    def remove_layer(self, chain_id: str) -> None:
        """Delete a layer no snapshot uses (:class:`~containerkit.errors.Conflict` otherwise)."""
        hexid = _chain_hex(chain_id)
        if not self.has_layer(chain_id):
            raise NotFound(f"layer {chain_id} is not in the snapshot store")
        users = [key for key in self.list_snapshots() if chain_id in self._parents(key)]
        if users:
            raise Conflict(f"layer {chain_id} is used by snapshot(s) {', '.join(users)}")
        self._discard(self.layer_dir(chain_id))
        for shifted in (self.root / "shifted").glob(f"*/{hexid}"):
            self._discard(shifted)
        with contextlib.suppress(FileNotFoundError):
            self._link_path(hexid).unlink()
        with contextlib.suppress(FileNotFoundError):
            self._meta_path(hexid).unlink()
        self.tarsplit_path(chain_id).unlink(missing_ok=True)

    # --- snapshots ----------------------------------------------------------------------------

    def _snap(self, key: str) -> Path:
        return self.root / "snapshots" / _check_key(key)

    def _existing_snap(self, key: str) -> Path:
        path = self._snap(key)
        if not path.is_dir():
            raise NotFound(f"snapshot {key!r} does not exist")
        return path

    def _parents(self, key: str) -> list[str]:
        parents = json.loads((self._existing_snap(key) / "parents.json").read_text())
        return [str(p) for p in parents]

    def exists(self, key: str) -> bool:
        return self._snap(key).is_dir()

    def list_snapshots(self) -> list[str]:
        return sorted(name for name in os.listdir(self.root / "snapshots") if _KEY_RE.match(name))

    def prepare(
        self, key: str, parents: Sequence[str], *, id_offset: tuple[int, int] | None = None
    ) -> RootfsMount:
        """Create the writable snapshot ``key`` over ``parents`` (chain ids, top-most first).

        ``id_offset``: (uid, gid) of a user-namespaced container's root on the host. The overlay
        upper dir is then owned by that root (the lowers are idmapped when mounted, see
        :func:`~containerkit.linux.overlay.mount_idmapped_overlay`); the copy driver's private
        rootfs is chowned by the offset instead.
        """
        target = self._snap(key)
        if isinstance(parents, str):
            raise InvalidArgument("parents must be a sequence of chain ids, not one string")
        parents = list(parents)
        for chain_id in parents:
            if not self.has_layer(chain_id):
                raise NotFound(f"snapshot {key!r}: parent layer {chain_id} is not in the store")
        if target.exists():
            raise Conflict(f"snapshot {key!r} already exists")
        stage = Path(tempfile.mkdtemp(prefix=f"snap-{key[:32]}{staging.owner_tag()}", dir=self._tmp))
        stage_fd = staging.hold_dir(stage)  # recovery removes it once this process is gone
        # what mounts(key) would read back from the files written here
        result = RootfsMount(type="bind", source=str(target / "upper"), options=("rbind", "rw"))
        try:
            (stage / "parents.json").write_text(json.dumps(parents))
            if self.driver == "overlay":
                shift = id_offset if id_offset is not None and parents and not self.idmap_lowers else None
                if id_offset is not None:
                    (stage / _USERNS_FILE).write_text(
                        json.dumps({"offset": list(id_offset), "shifted": bool(shift)})
                    )
                if shift is not None:
                    for chain_id in parents:
                        self._shifted_layer(chain_id, shift)
                options = self._check_options(key, parents, shift)
                if parents:
                    result = RootfsMount(
                        type="overlay",
                        source="overlay",
                        options=options,
                        idmap_lowers=id_offset is not None and shift is None,
                    )
                (stage / "upper").mkdir()
                (stage / "work").mkdir()
                uoff, goff = id_offset or (0, 0)
                if parents:  # the merged root shows the upper dir's owner and mode
                    st = os.stat(self.layer_dir(parents[0]))
                    os.chown(stage / "upper", st.st_uid + uoff, st.st_gid + goff)
                    os.chmod(stage / "upper", stat.S_IMODE(st.st_mode))
                elif id_offset is not None:
                    os.chown(stage / "upper", uoff, goff)
            else:
                result = RootfsMount(type="bind", source=str(target / "rootfs"), options=("rbind", "rw"))
                rootfs = stage / "rootfs"
                rootfs.mkdir()
                rootfs.chmod(0o755)
                for chain_id in reversed(parents):
                    info = self.layer_info(chain_id)
                    apply_layer_dir(self.layer_dir(chain_id), rootfs, info.whiteouts, info.opaque_dirs)
                if id_offset is not None:
                    shift_ownership(rootfs, *id_offset)
                    (stage / _USERNS_FILE).write_text(
                        json.dumps({"offset": list(id_offset), "shifted": True})
                    )
            try:
                os.rename(stage, target)
            except OSError as err:
                if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise Conflict(f"snapshot {key!r} already exists") from None
                raise
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        finally:
            os.close(stage_fd)
        return result

    def _check_options(
        self, key: str, parents: Sequence[str], shift: tuple[int, int] | None = None
    ) -> tuple[str, ...]:
        """The overlay options snapshot ``key`` will be mounted with, refused when they do not
        fit the one page the kernel takes."""
        snap = self._snap(key)
        options = self._overlay_options(snap, parents, shift)
        data = ",".join(options)
        if len(data) >= os.sysconf("SC_PAGESIZE"):
            raise InvalidArgument(
                f"snapshot {key!r}: {len(parents)} layers make overlay options of {len(data)} bytes, "
                "over one page; flatten the image or use a store root with a shorter path"
            )
        return options

    def _lowerdirs(self, parents: Sequence[str], shift: tuple[int, int] | None = None) -> list[str]:
        if shift is not None:
            return [str(self._shifted_dir(p, shift)) for p in parents]
        return [str(self._link_path(_chain_hex(p))) for p in parents]

    def _shifted_dir(self, chain_id: str, shift: tuple[int, int]) -> Path:
        return self.root / "shifted" / f"{shift[0]}-{shift[1]}" / _chain_hex(chain_id)

    def _shifted_layer(self, chain_id: str, shift: tuple[int, int]) -> Path:
        """Layer ``chain_id`` with every owner moved by ``shift``: made once per (layer, range),
        in tmp/ and renamed into place, then shared by every container of that range."""
        target = self._shifted_dir(chain_id, shift)
        if target.is_dir():
            return target
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f"shift-{_chain_hex(chain_id)[:_LINK_LEN]}-", dir=self._tmp))
        try:
            copy_shifted(self.layer_dir(chain_id), stage / "fs", *shift)
            try:
                os.rename(stage / "fs", target)
            except OSError as err:
                if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise  # else another process made the same copy first
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return target

    def _shift_of(self, snap: Path) -> tuple[tuple[int, int] | None, bool]:
        """(the id offset of a user-namespaced snapshot, whether its lowers are shifted copies)."""
        try:
            data = json.loads((snap / _USERNS_FILE).read_text())
        except FileNotFoundError:
            return None, False
        offset = (int(data["offset"][0]), int(data["offset"][1]))
        return offset, bool(data.get("shifted"))

    def _overlay_options(
        self, snap: Path, parents: Sequence[str], shift: tuple[int, int] | None = None
    ) -> tuple[str, ...]:
        return (
            "lowerdir=" + ":".join(self._lowerdirs(parents, shift)),
            f"upperdir={snap / 'upper'}",
            f"workdir={snap / 'work'}",
            *_OVERLAY_EXTRA,
        )

    def mounts(self, key: str) -> RootfsMount:
        """The mount that shows snapshot ``key`` (what :meth:`prepare` returned)."""
        snap = self._existing_snap(key)
        parents = self._parents(key)
        if self.driver == "copy":
            return RootfsMount(type="bind", source=str(snap / "rootfs"), options=("rbind", "rw"))
        if not parents:
            return RootfsMount(type="bind", source=str(snap / "upper"), options=("rbind", "rw"))
        offset, shifted = self._shift_of(snap)
        shift = offset if shifted else None
        return RootfsMount(
            type="overlay",
            source="overlay",
            options=self._overlay_options(snap, parents, shift),
            idmap_lowers=offset is not None and not shifted,
        )

    def mount(self, key: str, target: Path | None = None) -> Path:
        """Mount snapshot ``key`` on the host at ``target`` (default ``snapshots/<key>/merged``)."""
        snap = self._existing_snap(key)
        where = target if target is not None else snap / "merged"
        where.mkdir(exist_ok=True)
        m = self.mounts(key)
        if m.type == "bind":
            overlay.bind_mount(m.source, where)
        else:
            parents = self._parents(key)
            offset, shifted = self._shift_of(snap)
            overlay.mount_overlay(
                self._lowerdirs(parents, offset if shifted else None),
                snap / "upper",
                snap / "work",
                where,
                options=_OVERLAY_EXTRA,
            )
        return where

    def unmount(self, target: Path) -> None:
        """Undo :meth:`mount` (lazily: a busy mount never blocks cleanup)."""
        overlay.unmount(target)

    def remove(self, key: str, *, wait: bool = True) -> None:
        """Delete snapshot ``key`` and everything written to it (unmounting ``merged/`` first).
        ``wait=False``: it is gone at once, its files are deleted in the background."""
        snap = self._existing_snap(key)
        merged = snap / "merged"
        if merged.exists() and overlay.is_mountpoint(merged):
            overlay.unmount(merged)
        self._discard(snap, wait=wait)

    @contextlib.contextmanager
    def changes(self, key: str) -> Iterator[SnapshotChanges]:
        """Where snapshot ``key``'s changes over its parents are (what the diff maker reads).

        For the copy driver the parents' tree is built in ``tmp/`` for the time of the ``with``
        block (held by this process, so recovery removes it after a crash).
        """
        snap = self._existing_snap(key)
        parents = self._parents(key)
        offset, _shifted = self._shift_of(snap)
        if self.driver == "overlay":
            yield SnapshotChanges(
                upper=snap / "upper",
                id_offset=offset or (0, 0),
                lower_root=self.layer_dir(parents[0]) if parents else None,
                lowers=tuple(self.layer_dir(p) for p in parents),
            )
            return
        stage = Path(tempfile.mkdtemp(prefix=f"diff-{key[:32]}{staging.owner_tag()}", dir=self._tmp))
        held = staging.hold_dir(stage)
        try:
            lower = stage / "lower"
            lower.mkdir()
            lower.chmod(0o755)
            for chain_id in reversed(parents):
                info = self.layer_info(chain_id)
                apply_layer_dir(self.layer_dir(chain_id), lower, info.whiteouts, info.opaque_dirs)
            yield SnapshotChanges(upper=snap / "rootfs", id_offset=offset or (0, 0), lower_tree=lower)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            os.close(held)

    def id_offset(self, key: str) -> tuple[int, int] | None:
        """(uid, gid) on the host of a user-namespaced snapshot's root; None for the others."""
        return self._shift_of(self._existing_snap(key))[0]

    def usage(self, key: str) -> int:
        """Bytes written to snapshot ``key``: its upper dir (the whole rootfs for the copy driver)."""
        snap = self._existing_snap(key)
        return _disk_usage(snap / ("upper" if self.driver == "overlay" else "rootfs"))
