"""Build layer tarballs entry by entry (hostile ones included) and describe unpacked trees."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Iterable
from pathlib import Path

import zstandard

MTIME = 1_700_000_000

Entry = tuple[tarfile.TarInfo, bytes | None]


def _info(
    name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0, mtime: int = MTIME
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = mtime
    return info


def _pax_xattrs(xattrs: dict[str, bytes]) -> dict[str, str]:
    return {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()}


def file(
    name: str,
    data: bytes = b"",
    mode: int = 0o644,
    *,
    uid: int = 0,
    gid: int = 0,
    mtime: int = MTIME,
    xattrs: dict[str, bytes] | None = None,
) -> Entry:
    info = _info(name, tarfile.REGTYPE, mode, uid, gid, mtime)
    info.size = len(data)
    if xattrs:
        info.pax_headers = {
            f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()
        }
    return info, data


def directory(
    name: str, mode: int = 0o755, *, uid: int = 0, gid: int = 0, xattrs: dict[str, bytes] | None = None
) -> Entry:
    info = _info(name, tarfile.DIRTYPE, mode, uid, gid)
    if xattrs:
        info.pax_headers = {
            f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()
        }
    return info, None


def symlink(name: str, target: str, *, uid: int = 0, gid: int = 0) -> Entry:
    info = _info(name, tarfile.SYMTYPE, 0o777, uid, gid)
    info.linkname = target
    return info, None


def hardlink(name: str, target: str) -> Entry:
    info = _info(name, tarfile.LNKTYPE, 0o644)
    info.linkname = target
    return info, None


def device(name: str, kind: bytes, major: int = 0, minor: int = 0, mode: int = 0o660) -> Entry:
    info = _info(name, kind, mode)
    info.devmajor, info.devminor = major, minor
    return info, None


def whiteout(path: str) -> Entry:
    parent, _, name = path.rpartition("/")
    return file(f"{parent}/.wh.{name}" if parent else f".wh.{name}")


def opaque(dir_path: str) -> Entry:
    return file(f"{dir_path}/.wh..wh..opq")


def build_tar(entries: Iterable[Entry], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def compress(data: bytes, kind: str) -> bytes:
    if kind == "gzip":
        return gzip.compress(data, compresslevel=1)
    if kind == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    assert kind == "plain"
    return data


def diff_id(tar_bytes: bytes) -> str:
    return "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def describe(root: Path, *, times: bool = True) -> dict[str, tuple[object, ...]]:
    """Every entry under ``root``: type, mode, owner, content/target/device, user xattrs, mtime."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            mode = st.st_mode
            if stat.S_ISREG(mode):
                with open(path, "rb") as f:
                    what: object = hashlib.sha256(f.read()).hexdigest()[:16]
            elif stat.S_ISLNK(mode):
                what = os.readlink(path)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                what = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                what = None
            xattrs: tuple[tuple[str, bytes], ...] = ()
            if not stat.S_ISLNK(mode):
                xattrs = tuple(
                    sorted(
                        (k, os.getxattr(path, k, follow_symlinks=False))
                        for k in os.listxattr(path, follow_symlinks=False)
                        if k.startswith("user.")
                    )
                )
            mtime = st.st_mtime_ns if times and not stat.S_ISDIR(mode) else None
            out[rel] = (stat.S_IFMT(mode), stat.S_IMODE(mode), st.st_uid, st.st_gid, what, xattrs, mtime)
    return out
