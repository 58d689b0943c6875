"""A container's changes as docker shows them (``docker diff``), its writable layer as a new
image (``docker commit``), config-only images (a builder's ENV or CMD step) and an image's
history (``docker history``).

A commit is dockerd's ``CommitImage``: the snapshot diff becomes one uncompressed layer (its
digest is its diff id, as ``import_rootfs`` stores layers; compression is for transport), the
config is the container's config with the ``--change`` instructions applied, and the history
gains one entry whose ``created_by`` is the container's command. A diff with no entries adds no
layer and an ``empty_layer`` entry, as dockerd does for an unchanged container. The engine's own
mount points (``/etc/hosts``, ``/etc/hostname``, ``/etc/resolv.conf``, volume and bind targets
it made) are left out of both the changes and the layer, where dockerd keeps them in its init
layer.

Crash safety: the layer blob and the unpacked layer appear before the image's metadata
transaction. A journal (``<content>/commits/<pid:start>.json``) names them first; a commit whose
process died leaves its journal, and :func:`recover_commits` then deletes whichever of them no
image references.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import posixpath
import re
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from containerkit.engine._recovery import owner_alive, owner_token
from containerkit.errors import InvalidArgument, InvalidReference, NotFound, NotRunning
from containerkit.images.archive import ArchiveImage
from containerkit.images.content import Descriptor
from containerkit.images.manifest import (
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_MANIFEST,
    build_manifest,
    canonical_json,
    chain_ids,
    host_platform,
)
from containerkit.images.manifest import _parse_time as parse_time
from containerkit.images.reference import ImageRef, parse_reference
from containerkit.linux import staging
from containerkit.spec import Change, ContainerStatus, HistoryEntry, Image, ImageConfig
from containerkit.storage.diff import make_diff

if TYPE_CHECKING:
    from containerkit.engine.container_service import ContainerService
    from containerkit.engine.containers import Container
    from containerkit.engine.images import ImageCollection
    from containerkit.storage.snapshots import SnapshotStore

__all__ = [
    "ENGINE_PATHS",
    "apply_changes",
    "changes",
    "commit",
    "container_config",
    "derive",
    "history",
    "recover_commits",
    "snapshot_changes",
]

ENGINE_PATHS = (
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "etc/mtab",
    ".dockerenv",
    "dev/console",
    "dev/pts",
    "dev/shm",
    "proc",
    "sys",
)
"""What dockerd's init layer holds (``daemon/initlayer``): mount points, never a change."""

_EMPTY_TAR_SHA = hashlib.sha256(bytes(10240)).hexdigest()
"""The diff id of a tar with no entries, as Python's tarfile writes it (one zero record)."""

_DEFAULT_SHELL = ("/bin/sh", "-c")
_COMMIT_CHANGES = (
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
)
"""The instructions ``docker commit --change`` accepts (moby ``validCommitCommands``)."""

# -- docker diff ---------------------------------------------------------------------------


def _mount_points(container: Container) -> set[str]:
    """The engine-made paths of a container, relative: the init layer's and its mount targets."""
    paths = set(ENGINE_PATHS)
    for mount in container.spec.mounts:
        target = posixpath.normpath(mount.target).lstrip("/")
        if target:
            paths.add(target)
    return paths


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _empty(path: str, st: os.stat_result) -> bool:
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    if stat.S_ISDIR(st.st_mode):
        with os.scandir(path) as it:
            return next(it, None) is None
    return False


def _same_file(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            chunk = fa.read(1 << 20)
            if chunk != fb.read(len(chunk) or 1):
                return False
            if not chunk:
                return True


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


class _Changes:
    """moby's ``archive.OverlayChanges`` (overlay: the upper dir walked, each path looked up in
    the parent layers) and ``ChangesDirs`` (copy driver: the whole tree against its parents'),
    in the walk's order: lexical within a directory, depth first, a directory's own ``C``
    ahead of the first change under it."""

    def __init__(
        self,
        upper: Path,
        lowers: Sequence[Path],
        *,
        whole_tree: bool,
        skip: set[str],
        id_offset: tuple[int, int] = (0, 0),
    ) -> None:
        self.id_offset = id_offset
        """A user-namespaced snapshot holds host ids above: compared as the container's ids."""
        self.upper = str(upper)
        self.lowers = [str(p) for p in lowers]
        self.whole_tree = whole_tree
        self.skip = skip
        self.out: list[Change] = []
        self.changed_dirs: set[str] = set()

    def lower(self, rel: str) -> os.stat_result | None:
        for root in self.lowers:
            try:
                st = os.lstat(os.path.join(root, rel))
            except (FileNotFoundError, NotADirectoryError):
                continue
            return None if _is_whiteout(st) else st
        return None

    def add(self, rel: str, kind: Literal["C", "A", "D"], is_dir: bool) -> None:
        if is_dir and kind != "D":
            self.changed_dirs.add(rel)
        if kind in ("A", "D"):
            parent = posixpath.dirname(rel)
            if parent and parent not in self.changed_dirs:
                self.out.append(Change("/" + parent, "C"))
                self.changed_dirs.add(parent)
        self.out.append(Change("/" + rel, kind))

    def walk(self, rel_dir: str) -> None:
        here = os.path.join(self.upper, rel_dir) if rel_dir else self.upper
        names = sorted(os.listdir(here))
        gone: list[str] = []
        if self.whole_tree:
            low_dir = os.path.join(self.lowers[0], rel_dir) if rel_dir else self.lowers[0]
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                if stat.S_ISDIR(os.lstat(low_dir).st_mode):  # never through a symlink below
                    gone = sorted(set(os.listdir(low_dir)) - set(names))
        for name in sorted([*names, *gone]):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if name in gone:
                self.add(rel, "D", False)
                continue
            path = os.path.join(here, name)
            st = os.lstat(path)
            low = self.lower(rel)
            if rel in self.skip and low is None and _empty(path, st):
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if _is_whiteout(st):
                if low is not None:
                    self.add(rel, "D", False)
                continue
            if is_dir and _opaque(path) and low is not None:
                self.add(rel, "D", True)  # emptied and made again: docker reports it deleted
                self.changed_dirs.add(rel)
                self.walk_added(rel)
                continue
            if low is None:
                self.add(rel, "A", is_dir)
                if is_dir:
                    self.walk_added(rel)
                continue
            if is_dir and stat.S_ISDIR(low.st_mode) and not self._dir_changed(st, low):
                # reported (ahead of them) only if something below it changed
                outer, self.out = self.out, []
                self.changed_dirs.add(rel)
                self.walk(rel)
                below, self.out = self.out, outer
                if below:
                    self.out += [Change("/" + rel, "C"), *below]
                else:
                    self.changed_dirs.discard(rel)
                continue
            if not is_dir and self.whole_tree and not self._node_changed(path, st, low):
                continue
            self.add(rel, "C", is_dir)
            if is_dir:
                self.walk(rel)

    def walk_added(self, rel_dir: str) -> None:
        here = os.path.join(self.upper, rel_dir)
        for name in sorted(os.listdir(here)):
            rel = f"{rel_dir}/{name}"
            st = os.lstat(os.path.join(here, name))
            if _is_whiteout(st):
                continue
            self.add(rel, "A", stat.S_ISDIR(st.st_mode))
            if stat.S_ISDIR(st.st_mode):
                self.walk_added(rel)

    def _dir_changed(self, st: os.stat_result, low: os.stat_result) -> bool:
        # moby compares size, mode and mtime; the mtime changes with any entry made or removed
        # in it, which the entries below report themselves, so only mode and owner count here
        return stat.S_IMODE(st.st_mode) != stat.S_IMODE(low.st_mode) or self._owner(st) != (
            low.st_uid,
            low.st_gid,
        )

    def _owner(self, st: os.stat_result) -> tuple[int, int]:
        return st.st_uid - self.id_offset[0], st.st_gid - self.id_offset[1]

    def _node_changed(self, path: str, st: os.stat_result, low: os.stat_result) -> bool:
        if (
            stat.S_IFMT(st.st_mode) != stat.S_IFMT(low.st_mode)
            or stat.S_IMODE(st.st_mode) != stat.S_IMODE(low.st_mode)
            or self._owner(st) != (low.st_uid, low.st_gid)
            or st.st_size != low.st_size
            or st.st_mtime_ns != low.st_mtime_ns
            or st.st_rdev != low.st_rdev
        ):
            return True
        if stat.S_ISLNK(st.st_mode):
            return os.readlink(path) != os.readlink(self._lower_path(path))
        # a whole-second mtime (a layer's, or a coarse filesystem's) may hide a same-size rewrite
        return (
            stat.S_ISREG(st.st_mode)
            and st.st_mtime_ns % 1_000_000_000 == 0
            and not _same_file(path, self._lower_path(path))
        )

    def _lower_path(self, path: str) -> str:
        return os.path.join(self.lowers[0], os.path.relpath(path, self.upper))


def changes(service: ContainerService, container: Container) -> list[Change]:
    """``docker diff``: what the container changed over its image, running or stopped."""
    return snapshot_changes(service.snapshots, container.id, _mount_points(container))


def snapshot_changes(store: SnapshotStore, key: str, skip: Iterable[str] = ()) -> list[Change]:
    """What snapshot ``key`` changed over its parents, as docker's changes, for either driver;
    ``skip``: relative paths of engine-made mount points (left out where empty and new)."""
    skip = set(skip)
    with store.changes(key) as where:
        if where.lower_tree is not None:
            walker = _Changes(
                where.upper, [where.lower_tree], whole_tree=True, skip=skip, id_offset=where.id_offset
            )
        else:
            walker = _Changes(
                where.upper, where.lowers, whole_tree=False, skip=skip, id_offset=where.id_offset
            )
        walker.walk("")
    return walker.out


# -- the container's config and --change ----------------------------------------------------


def _env_list(base: Iterable[str], extra: Iterable[tuple[str, str]]) -> list[str]:
    """docker's ``ReplaceOrAppendEnvValues``: a key set again replaces the value in place."""
    out = list(base)
    index = {item.partition("=")[0]: n for n, item in enumerate(out)}
    for key, value in extra:
        if key in index:
            out[index[key]] = f"{key}={value}"
        else:
            index[key] = len(out)
            out.append(f"{key}={value}")
    return out


def container_config(container: Container, image_config: Mapping[str, Any]) -> dict[str, Any]:
    """The container's config as dockerd keeps it (``Config`` of inspect): the image's runtime
    config with what the container was created with laid over it."""
    spec = container.spec
    image = dict(image_config)
    labels = dict(image.get("Labels") or {})
    labels.update(spec.labels)
    exposed = dict(image.get("ExposedPorts") or {})
    for binding in spec.ports:
        exposed.setdefault(binding.key, {})
    volumes = dict(image.get("Volumes") or {})
    volumes.update({m.target: {} for m in spec.mounts if m.type == "volume" and not m.source})
    entrypoint = list(spec.entrypoint) if spec.entrypoint is not None else image.get("Entrypoint")
    if spec.command is not None:
        cmd: list[str] | None = list(spec.command)
    elif spec.entrypoint is not None:
        cmd = None  # an entrypoint given at create drops the image's command, as docker does
    else:
        cmd = image.get("Cmd")
    config: dict[str, Any] = {
        "Hostname": spec.hostname or container.id[:12],
        "Domainname": "",
        "User": spec.user if spec.user is not None else image.get("User") or "",
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": spec.tty,
        "OpenStdin": spec.stdin_open,
        "StdinOnce": spec.stdin_once,
        "Env": _env_list(image.get("Env") or (), spec.env),
        "Cmd": cmd or None,
        "Image": container.image,
        "Volumes": volumes or None,
        "WorkingDir": spec.workdir or image.get("WorkingDir") or "",
        "Entrypoint": entrypoint or None,
        "OnBuild": image.get("OnBuild"),
        "Labels": labels,
    }
    if exposed:
        config["ExposedPorts"] = exposed
    stop_signal = spec.stop_signal or image.get("StopSignal")
    if stop_signal:
        config["StopSignal"] = stop_signal
    if spec.healthcheck is not None:
        config["Healthcheck"] = spec.healthcheck.to_wire()
    elif image.get("Healthcheck"):
        config["Healthcheck"] = image["Healthcheck"]
    for key in ("Shell", "ArgsEscaped"):
        if image.get(key):
            config[key] = image[key]
    return config


_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-+])?(?P<word>[^}]*)\}"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*))"
)


def _expand(text: str, env: Mapping[str, str]) -> str:
    """``$v``, ``${v}``, ``${v:-w}``, ``${v-w}``, ``${v:+w}``, ``${v+w}`` (the builder's forms)."""

    def sub(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("name")
        op, word = match.group("op"), match.group("word") or ""
        value = env.get(name)
        if op in (":-", "-"):
            unset = value is None or (op == ":-" and value == "")
            return word if unset else value or ""
        if op in (":+", "+"):
            set_ = value is not None and (op == "+" or value != "")
            return word if set_ else ""
        return value or ""

    return _VAR.sub(sub, text)


def _words(text: str, env: Mapping[str, str]) -> list[str]:
    """Words as the Dockerfile lexer splits them: whitespace outside quotes, ``'...'`` literal,
    ``"..."`` and bare text with variables expanded, ``\\`` escaping the next character."""
    words: list[str] = []
    current: list[str] = []
    started = False
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            if started:
                words.append("".join(current))
                current, started = [], False
            i += 1
            continue
        started = True
        if char == "\\" and i + 1 < len(text):
            current.append(text[i + 1])
            i += 2
        elif char == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise InvalidArgument(f"unterminated single quote in {text!r}")
            current.append(text[i + 1 : end])
            i = end + 1
        elif char == '"':
            j, part = i + 1, []
            while j < len(text) and text[j] != '"':
                if text[j] == "\\" and j + 1 < len(text) and text[j + 1] in '"\\$':
                    part.append(text[j + 1])
                    j += 2
                    continue
                part.append(text[j])
                j += 1
            if j >= len(text):
                raise InvalidArgument(f"unterminated double quote in {text!r}")
            current.append(_expand("".join(part), env))
            i = j + 1
        else:
            j = i
            while j < len(text) and not text[j].isspace() and text[j] not in "\\'\"":
                j += 1
            current.append(_expand(text[i:j], env))
            i = j
    if started:
        words.append("".join(current))
    return words


def _json_or_none(text: str) -> list[str] | None:
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _pairs(instruction: str, rest: str, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """``ENV``/``LABEL`` arguments: ``k=v k2="v 2"``, or the old ``k value with spaces``."""
    words = _words(rest, env)
    if not words:
        raise InvalidArgument(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = rest.strip().partition(" ")
        if instruction == "LABEL" or not value.strip():
            raise InvalidArgument(f"{instruction} names must be followed by '=' and a value: {rest!r}")
        return [(key, " ".join(_words(value, env)))]
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"{instruction}: {word!r} is not of the form key=value")
        pairs.append((key, value))
    return pairs


_DURATION = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


def _go_duration(flag: str, text: str) -> int:
    """A Go duration (``30s``, ``1m30s``) in nanoseconds."""
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_NS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise InvalidArgument(f"HEALTHCHECK --{flag}: invalid duration {text!r}")
    return int(total)


_HEALTH_FLAGS = {
    "interval": "Interval",
    "timeout": "Timeout",
    "start-period": "StartPeriod",
    "start-interval": "StartInterval",
    "retries": "Retries",
}


def _healthcheck(rest: str) -> dict[str, Any]:
    """``HEALTHCHECK [--interval=D ...] CMD <command>`` or ``HEALTHCHECK NONE`` as docker's
    ``Healthcheck`` (durations in nanoseconds)."""
    check: dict[str, Any] = {}
    rest = rest.strip()
    while rest.startswith("--"):
        flag_text, _, rest = rest.partition(" ")
        rest = rest.strip()
        flag, _, value = flag_text[2:].partition("=")
        key = _HEALTH_FLAGS.get(flag)
        if key is None:
            raise InvalidArgument(f"HEALTHCHECK: unknown flag --{flag}")
        if key == "Retries":
            if not value.isdigit():
                raise InvalidArgument(f"HEALTHCHECK --retries: {value!r} is not a number")
            check[key] = int(value)
        else:
            check[key] = _go_duration(flag, value)
    kind, _, command = rest.partition(" ")
    if kind.upper() == "NONE":
        return {"Test": ["NONE"]}
    command = command.strip()
    if kind.upper() != "CMD" or not command:
        raise InvalidArgument(f"HEALTHCHECK: expected CMD <command> or NONE, got {rest!r}")
    exec_form = _json_or_none(command)
    check["Test"] = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", command]
    return check


def apply_changes(config: Mapping[str, Any], changes: Iterable[str]) -> dict[str, Any]:
    """dockerd's ``BuildFromConfig``: the Dockerfile instructions ``changes`` (CMD, ENTRYPOINT,
    ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR) applied in order
    to a docker config. ENTRYPOINT drops the command unless a CMD change came first."""
    out: dict[str, Any] = json.loads(json.dumps(dict(config)))  # a deep copy of plain JSON
    cmd_set = False
    for change in changes:
        text = change.strip()
        if not text:
            continue
        word, _, rest = text.partition(" ")
        instruction, rest = word.upper(), rest.strip()
        if instruction not in _COMMIT_CHANGES:
            raise InvalidArgument(f"{word.lower()} is not a valid change command")
        env = dict(item.partition("=")[::2] for item in out.get("Env") or ())
        shell = out.get("Shell") or list(_DEFAULT_SHELL)
        if instruction in ("CMD", "ENTRYPOINT"):
            exec_form = _json_or_none(rest)
            value = exec_form if exec_form is not None else [*shell, rest]
            if instruction == "CMD":
                out["Cmd"], cmd_set = value, True
            else:
                out["Entrypoint"] = value if rest else None
                if not cmd_set:
                    out["Cmd"] = None
            continue
        if not rest:
            raise InvalidArgument(f"{instruction} requires at least one argument")
        if instruction == "ENV":
            out["Env"] = _env_list(out.get("Env") or (), _pairs("ENV", rest, env))
        elif instruction == "LABEL":
            labels = dict(out.get("Labels") or {})
            labels.update(_pairs("LABEL", rest, env))
            out["Labels"] = labels
        elif instruction == "EXPOSE":
            ports = dict(out.get("ExposedPorts") or {})
            for item in _words(rest, env):
                port, _, proto = item.partition("/")
                low, _, high = port.partition("-")
                if not low.isdigit() or (high and not high.isdigit()):
                    raise InvalidArgument(f"EXPOSE: invalid port {item!r}")
                for number in range(int(low), int(high or low) + 1):
                    ports[f"{number}/{(proto or 'tcp').lower()}"] = {}
            out["ExposedPorts"] = ports
        elif instruction == "VOLUME":
            items = _json_or_none(rest)
            volumes = dict(out.get("Volumes") or {})
            for item in items if items is not None else _words(rest, env):
                if not item.strip():
                    raise InvalidArgument("VOLUME specified can not be an empty string")
                volumes[item] = {}
            out["Volumes"] = volumes
        elif instruction == "WORKDIR":
            path = " ".join(_words(rest, env))
            out["WorkingDir"] = posixpath.normpath(posixpath.join(out.get("WorkingDir") or "/", path))
        elif instruction in ("USER", "STOPSIGNAL"):
            out["User" if instruction == "USER" else "StopSignal"] = " ".join(_words(rest, env))
        elif instruction == "ONBUILD":
            trigger, _, args = rest.partition(" ")
            if trigger.upper() in ("ONBUILD", "FROM", "MAINTAINER"):
                raise InvalidArgument(f"{trigger.upper()} isn't allowed as an ONBUILD trigger")
            out["OnBuild"] = [*(out.get("OnBuild") or ()), f"{trigger.upper()} {args.strip()}".strip()]
        elif instruction == "HEALTHCHECK":
            out["Healthcheck"] = _healthcheck(rest)
    return out


# -- images: one layer or none, recorded -----------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _tag_ref(repository: str | None, tag: str | None) -> ImageRef | None:
    if not repository:
        if tag:
            raise InvalidArgument("a tag needs a repository to commit to")
        return None
    ref = parse_reference(repository)
    if ref.digest is not None:
        raise InvalidReference(f"refusing to create a tag with a digest reference: {repository}")
    return ref.with_tag(tag) if tag else ref


class _Journal:
    """What a commit is about to add (blob digests, layer chain ids), on disk before each appears
    and removed once the image is recorded (or the commit failed and cleaned up)."""

    def __init__(self, images: ImageCollection) -> None:
        directory = images.content.root / "commits"
        directory.mkdir(mode=0o700, exist_ok=True)
        self.path = directory / f"{owner_token()}-{threading.get_ident()}.json"
        self.blobs: list[str] = []
        self.layers: list[str] = []

    def note(self, *, blobs: Iterable[str] = (), layers: Iterable[str] = ()) -> None:
        self.blobs += [b for b in blobs if b not in self.blobs]
        self.layers += [x for x in layers if x not in self.layers]
        # not fsynced: a killed process leaves it in the page cache for recovery; after a power
        # loss the few unreferenced blobs it named are what ``images.prune`` reclaims
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"blobs": self.blobs, "layers": self.layers}))
        os.replace(tmp, self.path)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


def recover_commits(images: ImageCollection) -> list[str]:
    """Delete the blobs and layers that commits killed midway added and no image references
    (the journals of live processes stay); the digests and chain ids removed."""
    removed: list[str] = []
    directory = images.content.root / "commits"
    if not directory.is_dir():
        return removed
    for entry in sorted(directory.glob("*.json")):
        if owner_alive(entry.name.rsplit("-", 1)[0]):
            continue
        try:
            noted = json.loads(entry.read_text())
        except (OSError, ValueError):
            noted = {}
        layers, blobs = set(noted.get("layers") or ()), set(noted.get("blobs") or ())
        had_layers, had_blobs = set(images.snapshots.list_layers()), set(images.content.list())
        images._collect(layers, blobs, blocking=True)
        removed += sorted((had_layers - set(images.snapshots.list_layers())) & layers)
        removed += sorted((had_blobs - set(images.content.list())) & blobs)
        entry.unlink(missing_ok=True)
    for stale in directory.glob("*.tmp"):
        if not owner_alive(stale.name.rsplit("-", 1)[0]):
            stale.unlink(missing_ok=True)
    return removed


def _ingest_diff(images: ImageCollection, key: str, exclude: Iterable[str], journal: _Journal) -> Descriptor:
    """The snapshot's diff as a blob: written (and hashed as it is written) to a held file in the
    ingest dir, which recovery removes after a crash; its digest journaled, then the file itself
    published (no second copy)."""
    fd, name = tempfile.mkstemp(dir=images.content.ingest_dir(), prefix=f"commit{staging.owner_tag()}")
    try:
        staging.hold(fd)  # held (so recovery leaves it) until it is a blob or gone
        with os.fdopen(fd, "wb", buffering=1 << 20, closefd=False) as out:
            result = make_diff(images.snapshots, key, out, exclude=frozenset(exclude))
        if images.content.has(result.diff_id):
            return Descriptor(result.diff_id, result.size, MEDIA_OCI_LAYER)
        journal.note(blobs=[result.diff_id])
        desc = images.content.adopt(Path(name), result.diff_id)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        os.close(fd)
    return Descriptor(desc.digest, desc.size, MEDIA_OCI_LAYER)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _record(
    images: ImageCollection,
    doc: dict[str, Any],
    layers: Sequence[Descriptor],
    ref: ImageRef | None,
    journal: _Journal,
) -> Image:
    """Store the config and manifest, unpack a new layer, record the image (and its tag) in one
    transaction."""
    config_bytes = canonical_json(doc)
    config = Descriptor(_digest(config_bytes), len(config_bytes), MEDIA_OCI_CONFIG)
    manifest_bytes = build_manifest(config, layers)
    manifest = Descriptor(_digest(manifest_bytes), len(manifest_bytes), MEDIA_OCI_MANIFEST)
    chains = chain_ids(doc["rootfs"]["diff_ids"])
    journal.note(
        blobs=[d.digest for d in (config, manifest) if not images.content.has(d.digest)],
        layers=[c for c in chains if not images.snapshots.has_layer(c)],
    )
    images.content.ingest_bytes(config_bytes, config.digest)
    images.content.ingest_bytes(manifest_bytes, manifest.digest)
    created: list[str] = []
    record, layer_records, tags, _ = images._prepare(
        ArchiveImage(config, tuple(layers), (ref,) if ref is not None else (), manifest),
        created,
        with_digests=False,
    )
    with images.metadata.transaction():
        for item in layer_records:
            images.metadata.layers.add(item)
        images.metadata.images.add(record, tags=tags)
    if ref is not None:
        images.events.record("image", "tag", record.id, {"name": ref.familiar})
    return images.get(record.id)


@contextlib.contextmanager
def _adding(images: ImageCollection) -> Iterator[_Journal]:
    """GC waits while this runs; a failure removes what this commit alone added."""
    with images._adding():
        journal = _Journal(images)
        try:
            yield journal
        except BaseException:
            images._discard(journal.layers, journal.blobs)
            raise
        finally:
            journal.close()


def commit(
    service: ContainerService,
    container: Container,
    repository: str | None = None,
    tag: str | None = None,
    *,
    changes: Iterable[str] = (),
    message: str | None = None,
    author: str | None = None,
    pause: bool = True,
    config: ImageConfig | None = None,
    created_by: str | None = None,
) -> Image:
    """``docker commit``: the container's writable layer over its image as a new image."""
    images = service.images
    ref = _tag_ref(repository, tag)
    parent_id = container.image_id
    parent = json.loads(images._record(parent_id).config_json)
    own = container_config(container, parent.get("config") or {})
    new_config = config.to_oci() if config is not None else apply_changes(own, list(changes))
    line = created_by if created_by is not None else " ".join(own.get("Cmd") or ())
    frozen = False
    if pause and container.current_status() is ContainerStatus.RUNNING:
        container.pause()  # with its pause and unpause events, as dockerd's commit
        frozen = True
    try:
        with _adding(images) as journal:
            layer = _ingest_diff(images, container.id, _mount_points(container), journal)
            empty = layer.digest == "sha256:" + _EMPTY_TAR_SHA
            now = _now()
            entry: dict[str, Any] = {"created": _rfc3339(now), "created_by": line}
            if author:
                entry["author"] = author
            if message:
                entry["comment"] = message
            if empty:
                entry["empty_layer"] = True
            doc = {
                **{k: v for k, v in parent.items() if k in ("architecture", "os", "variant", "os.version")},
                "config": new_config,
                "container": container.id,
                "container_config": own,
                "created": _rfc3339(now),
                "docker_version": "containerkit",
                "history": [*(parent.get("history") or ()), entry],
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [*parent["rootfs"]["diff_ids"], *([] if empty else [layer.digest])],
                },
            }
            if author:
                doc["author"] = author
            record = images._record(parent_id)
            layers = [Descriptor(x.blob_digest, x.blob_size, x.media_type) for x in record.layers]
            if not empty:
                layers.append(layer)
            image = _record(images, doc, layers, ref, journal)
            if empty and layer.digest in journal.blobs:
                images.content.delete(layer.digest)  # no image has it
    finally:
        if frozen:
            with contextlib.suppress(NotFound, NotRunning):
                container.unpause()
    service.record(
        container,
        "commit",
        comment=message or "",
        imageID=image.id,
        imageRef=ref.familiar if ref is not None else "",
    )
    return image


def derive(
    images: ImageCollection,
    parent_id: str | None,
    config: ImageConfig,
    *,
    created_by: str,
    comment: str = "",
) -> Image:
    """A new image with ``parent_id``'s layers (none: scratch), ``config``, and one more history
    entry marked ``empty_layer`` (a builder's ENV, LABEL or CMD step adds no layer)."""
    now = _now()
    if parent_id is not None:
        parent_id = images.get(parent_id).id
        record = images._record(parent_id)
        parent = json.loads(record.config_json)
        layers = [Descriptor(x.blob_digest, x.blob_size, x.media_type) for x in record.layers]
    else:
        os_name, arch = host_platform()
        parent = {"architecture": arch, "os": os_name, "rootfs": {"type": "layers", "diff_ids": []}}
        layers = []
    entry: dict[str, Any] = {"created": _rfc3339(now), "created_by": created_by, "empty_layer": True}
    if comment:
        entry["comment"] = comment
    doc = {
        **{k: v for k, v in parent.items() if k in ("architecture", "os", "variant", "os.version")},
        "config": config.to_oci(),
        "created": _rfc3339(now),
        "history": [*(parent.get("history") or ()), entry],
        "rootfs": {"type": "layers", "diff_ids": list(parent["rootfs"]["diff_ids"])},
    }
    with _adding(images) as journal:
        return _record(images, doc, layers, None, journal)


# -- docker history --------------------------------------------------------------------------


def _history_of(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(h) for h in raw.get("history") or () if isinstance(h, Mapping)]


def history(images: ImageCollection, ref: str) -> list[HistoryEntry]:
    """``docker history``: newest first, each step with the size its layer adds. The image's own
    step carries its id and tags; a step older than that carries the id of a local image that
    is exactly the image up to that step (same history and layers), else ``<missing>``."""
    image = images.get(ref)
    record = images._record(image.id)
    raw = json.loads(record.config_json)
    steps = _history_of(raw)
    layer_sizes = []
    for layer in record.layers:
        stored = images.metadata.layers.get(layer.chain_id)
        layer_sizes.append(stored.size if stored is not None else 0)
    entries: list[HistoryEntry] = []
    n_layer = 0
    for step in steps:
        empty = bool(step.get("empty_layer"))
        size = 0
        if not empty:
            if n_layer >= len(layer_sizes):
                raise InvalidArgument(f"image {image.id}: too many non-empty layers in its history")
            size = layer_sizes[n_layer]
            n_layer += 1
        created = parse_time(step.get("created"))
        if created is not None and created.tzinfo is None:
            created = created.replace(tzinfo=dt.UTC)  # written in UTC ("Z")
        entries.append(
            HistoryEntry(
                id="<missing>",
                created=created,
                created_by=str(step.get("created_by") or ""),
                comment=str(step.get("comment") or ""),
                author=str(step.get("author") or ""),
                empty_layer=empty,
                size=size,
            )
        )
    ids = _ancestors(images, image, steps, record.diff_ids)
    out = []
    for index in range(len(entries) - 1, -1, -1):
        found = ids.get(index)
        if found is None:
            out.append(entries[index])
            continue
        out.append(attrs.evolve(entries[index], id=found, tags=images.get(found).tags))
    return out


def _ancestors(
    images: ImageCollection, image: Image, steps: Sequence[Mapping[str, Any]], diff_ids: Sequence[str]
) -> dict[int, str]:
    """Which history step each known image is: the image at its last step, then, walking down
    as dockerd follows ``Parent``, the local image that has exactly the steps and layers up to
    the one before, until one is not found."""
    ids = {len(steps) - 1: image.id} if steps else {}
    candidates: dict[int, list[tuple[str, list[dict[str, Any]], tuple[str, ...]]]] = {}
    for other_id in images.metadata.images.ids():
        if other_id == image.id:
            continue
        other = images.metadata.images.get(other_id)
        if other is None:
            continue
        other_steps = _history_of(json.loads(other.config_json))
        if 0 < len(other_steps) < len(steps):
            candidates.setdefault(len(other_steps), []).append((other_id, other_steps, other.diff_ids))
    for count in range(len(steps) - 1, 0, -1):
        match = next(
            (
                other_id
                for other_id, other_steps, other_diffs in candidates.get(count, [])
                if other_steps == list(steps[:count])
                and tuple(diff_ids[: len(other_diffs)]) == other_diffs
                and len(other_diffs) == sum(1 for s in steps[:count] if not s.get("empty_layer"))
            ),
            None,
        )
        if match is None:
            break
        ids[count - 1] = match
    return ids
