"""``client.containers`` and the remote :class:`Container`: Engine's container API over HTTP.

What a container *is* (name, image, labels, spec) comes from the last inspect and is refreshed
by :meth:`Container.reload`; what it is *doing* (status, exit code, pid) is asked of the daemon
on every access, as the in-process Engine reads its state files on every access.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import datetime as dt
import json
import math
import os
import stat as stat_mod
import tarfile
import threading
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal, cast
from urllib.parse import quote

import attrs

from containerkit.client import _frames, _wire
from containerkit.client._transport import DEFAULT, Transport
from containerkit.client.attach import AttachStream
from containerkit.client.exec import ExecStream
from containerkit.dockerapi.update import update_to_wire
from containerkit.errors import InvalidArgument, NotFound, NotModified, NotRunning, Timeout
from containerkit.spec import (
    Change,
    ContainerSize,
    ContainerSpec,
    ExecResult,
    Health,
    Image,
    NetworkEndpoint,
    RestartPolicy,
    Stats,
    parse_bytes,
    parse_signal,
)

__all__ = ["Container", "ContainerCollection", "ContainerStatus"]

ContainerStatus = Literal["created", "running", "paused", "restarting", "exited", "dead"]

_STOP_GRACE = 45.0
"""Read-timeout slack on top of a stop's own timeout: the SIGKILL wait (30 s) and the round trip."""
_DEFAULT_STOP_TIMEOUT = 10


def _path(ref: str) -> str:
    return "/containers/" + quote(ref.lstrip("/"), safe="")


class Container:
    """A live handle on one container in a daemon."""

    def __init__(self, transport: Transport, data: Mapping[str, Any]) -> None:
        self._transport = transport
        self.attrs: dict[str, Any] = dict(data)
        self.id: str = self.attrs["Id"]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Container) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<Container {self.short_id} {self.name}>"

    @property
    def _url(self) -> str:
        return _path(self.id)

    # -- what it is -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return str(self.attrs.get("Name") or "").lstrip("/")

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def image_id(self) -> str:
        return str(self.attrs.get("Image") or "")

    @property
    def image(self) -> str:
        return str((self.attrs.get("Config") or {}).get("Image") or self.image_id)

    @property
    def spec(self) -> ContainerSpec:
        return _wire.spec_from_inspect(self.attrs)

    @property
    def volume_names(self) -> list[str]:
        """The named and anonymous volumes this container mounts (from its inspect ``Mounts``)."""
        mounts = self.attrs.get("Mounts") or []
        return sorted({str(m["Name"]) for m in mounts if m.get("Type") == "volume" and m.get("Name")})

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.attrs.get("Config") or {}).get("Labels") or {})

    @property
    def created(self) -> dt.datetime:
        return _wire.parse_time(self.attrs.get("Created")) or dt.datetime.fromtimestamp(0, dt.UTC)

    @property
    def tty(self) -> bool:
        return bool((self.attrs.get("Config") or {}).get("Tty"))

    # -- its state (asked of the daemon on each access) --------------------------------------

    def reload(self) -> Container:
        """Re-read everything from the daemon (a rename by another client shows up)."""
        self.attrs = self._transport.get_json(f"{self._url}/json")
        return self

    def _state(self) -> dict[str, Any]:
        return dict(self.reload().attrs.get("State") or {})

    def size(self) -> ContainerSize:
        """``SizeRw``/``SizeRootFs`` as the daemon counts them (``inspect?size=1``; 0 for a
        field a daemon leaves out)."""
        data = self._transport.get_json(f"{self._url}/json", params={"size": 1})
        return ContainerSize(rw=int(data.get("SizeRw") or 0), root_fs=int(data.get("SizeRootFs") or 0))

    @property
    def status(self) -> ContainerStatus:
        return cast(ContainerStatus, self._state().get("Status") or "created")

    @property
    def exit_code(self) -> int | None:
        state = self._state()
        status = state.get("Status")
        code = state.get("ExitCode")
        if status in ("running", "paused") or not isinstance(code, int):
            return None
        if status == "created" and code == 0:
            return None  # never ran (a failed start records 127/126)
        return code

    @property
    def oom_killed(self) -> bool:
        return bool(self._state().get("OOMKilled"))

    @property
    def health(self) -> Health | None:
        """``State.Health`` as the daemon reports it now; None without a health check."""
        return Health.from_wire(self._state().get("Health"))

    @property
    def restart_count(self) -> int:
        return int(self.reload().attrs.get("RestartCount") or 0)

    @property
    def pid(self) -> int | None:
        state = self._state()
        pid = state.get("Pid")
        return (
            pid if state.get("Status") in ("running", "paused") and isinstance(pid, int) and pid > 0 else None
        )

    @property
    def started_at(self) -> str | None:
        return _time_text(self._state().get("StartedAt"))

    @property
    def finished_at(self) -> str | None:
        return _time_text(self._state().get("FinishedAt"))

    # -- networking -------------------------------------------------------------------------

    @property
    def networks(self) -> dict[str, NetworkEndpoint]:
        """Each connected network by name; addresses only while the container is plugged in."""
        settings = self.reload().attrs.get("NetworkSettings") or {}
        return {
            name: _wire.endpoint_from_wire(entry or {})
            for name, entry in (settings.get("Networks") or {}).items()
            if name != "none"
        }

    @property
    def ip_address(self) -> str:
        """The address on the first network (``""`` when not running or without one)."""
        settings = self.reload().attrs.get("NetworkSettings") or {}
        address = settings.get("IPAddress")
        if not address:
            address = next((n.get("IPAddress") for n in (settings.get("Networks") or {}).values() if n), "")
        return str(address or "")

    @property
    def ports(self) -> dict[str, list[tuple[str, int]]]:
        """Published ports: ``{"80/tcp": [("0.0.0.0", 32768)]}`` (empty list when not published)."""
        settings = self.reload().attrs.get("NetworkSettings") or {}
        out: dict[str, list[tuple[str, int]]] = {}
        for key, bindings in (settings.get("Ports") or {}).items():
            out[key] = [
                (b.get("HostIp") or "0.0.0.0", int(b.get("HostPort") or 0))
                for b in bindings or ()
                if str(b.get("HostPort") or "0").isdigit()
            ]
        return out

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the container; returns once its process runs (or raises with the reason)."""
        reply = self._transport.request("POST", f"{self._url}/start", allow_304=True)
        if reply.status == 304:
            raise NotModified(f"container {self.name} is already running")

    def claim_exit(self) -> None:
        """Nothing to do here: the daemon's watcher holds an AutoRemove container's exit."""

    def release_exit(self) -> None:
        """Nothing to do here (see :meth:`claim_exit`)."""

    def wait(self, timeout: float | None = None) -> int:
        """Block until the container exits; its exit code (128+n when killed by signal n)."""
        auto_remove = bool((self.attrs.get("HostConfig") or {}).get("AutoRemove"))
        state = self._state_before_wait(auto_remove)
        if state.get("Status") == "created":
            raise NotRunning(f"container {self.name} has not been started")
        condition = "removed" if auto_remove else "not-running"
        try:
            data = self._transport.post_json(
                f"{self._url}/wait", params={"condition": condition}, timeout=timeout
            )
        except Timeout:
            raise Timeout(f"container {self.name} still running after {timeout} s") from None
        return int(data["StatusCode"])

    def _state_before_wait(self, auto_remove: bool) -> dict[str, Any]:
        """The state, ``{}`` once auto-removed (the daemon keeps the exit code: its shim's exit
        command removes the container, which hides it from the start of the removal)."""
        try:
            return self._state()
        except NotFound:
            if not auto_remove:
                raise
            return {}

    def kill(self, sig: int | str = "SIGKILL") -> None:
        number = parse_signal(sig)
        self._transport.request("POST", f"{self._url}/kill", params={"signal": number})

    def stop(self, timeout: float | None = None) -> None:
        """The stop signal, then SIGKILL after ``timeout`` seconds (the spec's, default 10)."""
        seconds = self._stop_seconds(timeout)
        params = {"t": math.ceil(timeout)} if timeout is not None else None
        reply = self._transport.request(
            "POST", f"{self._url}/stop", params=params, timeout=seconds + _STOP_GRACE, allow_304=True
        )
        if reply.status == 304:
            raise NotModified(f"container {self.name} is not running")

    def restart(self, timeout: float | None = None) -> None:
        seconds = self._stop_seconds(timeout)
        params = {"t": math.ceil(timeout)} if timeout is not None else None
        self._transport.request("POST", f"{self._url}/restart", params=params, timeout=seconds + _STOP_GRACE)

    def _stop_seconds(self, timeout: float | None) -> float:
        if timeout is not None:
            return timeout
        configured = (self.attrs.get("Config") or {}).get("StopTimeout")
        return float(configured) if isinstance(configured, int) else _DEFAULT_STOP_TIMEOUT

    def pause(self) -> None:
        self._transport.request("POST", f"{self._url}/pause")

    def unpause(self) -> None:
        self._transport.request("POST", f"{self._url}/unpause")

    def remove(self, *, force: bool = False, volumes: bool = False) -> None:
        self._transport.request(
            "DELETE", self._url, params={"force": force, "v": volumes}, timeout=_STOP_GRACE + 30
        )

    def rename(self, name: str) -> None:
        self._transport.request("POST", f"{self._url}/rename", params={"name": name})
        self.reload()

    def update(
        self,
        *,
        memory: int | str | None = None,
        memory_swap: int | str | None = None,
        cpus: float | None = None,
        cpu_shares: int | None = None,
        pids: int | None = None,
        cpuset_cpus: str | None = None,
        cpuset_mems: str | None = None,
        restart_policy: RestartPolicy | None = None,
    ) -> None:
        """``docker update``: new limits (None keeps one) and restart policy, live and kept."""
        swap = -1 if memory_swap == -1 else parse_bytes(memory_swap, field="memory_swap")
        body = update_to_wire(
            memory=parse_bytes(memory, field="memory"),
            memory_swap=swap,
            cpus=cpus,
            cpu_shares=cpu_shares,
            pids=pids,
            cpuset_cpus=cpuset_cpus,
            cpuset_mems=cpuset_mems,
            restart_policy=restart_policy,
        )
        self._transport.request("POST", f"{self._url}/update", body=body)
        self.reload()

    # -- io ---------------------------------------------------------------------------------

    def logs(
        self,
        *,
        stdout: bool = True,
        stderr: bool = True,
        tail: int | None = None,
        since: float | dt.datetime | None = None,
        timestamps: bool = False,
        follow: bool = False,
        demux: bool = False,
    ) -> Any:
        """A snapshot of the logs as bytes; with ``follow=True`` an iterator ending at exit.

        ``demux=True`` keeps the streams apart (a command line prints each where it belongs):
        always an iterator of ``("stdout" | "stderr", chunk)``; a tty's output is all stdout.
        """
        if not stdout and not stderr:
            return iter(()) if follow or demux else b""
        since_ts = since.timestamp() if isinstance(since, dt.datetime) else since
        params = {
            "stdout": stdout,
            "stderr": stderr,
            "tail": "all" if tail is None else tail,
            "since": None if since_ts is None else repr(float(since_ts)),
            "timestamps": timestamps,
            "follow": follow,
        }
        reply = self._transport.request(
            "GET", f"{self._url}/logs", params=params, stream=True, timeout=None if follow else DEFAULT
        )
        multiplexed = "multiplexed" in reply.headers.get("Content-Type", "") or not self.tty
        frames = _frames.demux(reply.chunks()) if multiplexed else _frames.raw(reply.chunks())
        if demux:
            return frames if follow else iter(list(frames))
        chunks = (chunk for _name, chunk in frames)
        if follow:
            return chunks
        return b"".join(chunks)

    def resize(self, rows: int, cols: int) -> None:
        """Set the size of the container's terminal; its processes get SIGWINCH."""
        self._transport.request("POST", f"{self._url}/resize", params={"h": rows, "w": cols})

    def attach(
        self,
        *,
        stdout: bool = True,
        stderr: bool = True,
        logs: bool = False,
        stdin: bool = False,
        detach_keys: str | None = None,
    ) -> AttachStream:
        """``(stream, chunk)`` of the output from now (``logs=True``: from the first line) until
        the container stops. Connected before this returns: attach, then start, and nothing is
        missed; the daemon removes an auto-remove container only after the stream is drained.

        ``stdin=True`` forwards :meth:`AttachStream.write_stdin` to a container created with
        ``stdin_open``; :meth:`AttachStream.close_stdin` ends it (with ``stdin_once``: for good).
        With a tty, the daemon ends the stream at ``detach_keys`` (its default when None).
        """
        params: dict[str, Any] = {"stream": True, "logs": logs, "stdin": stdin, "stdout": stdout}
        params["stderr"] = stderr
        if detach_keys is not None:
            params["detachKeys"] = detach_keys
        raw = self._transport.hijack("POST", f"{self._url}/attach", params=params)
        return AttachStream(raw, tty=self.tty, stdin=stdin, name=self.name or self.short_id)

    def exec(
        self,
        command: Sequence[str] | str,
        *,
        env: Mapping[str, str] | Iterable[str] | None = None,
        user: str | None = None,
        workdir: str | None = None,
        tty: bool = False,
        stdin: bool = False,
        privileged: bool = False,
        stream: bool = False,
        detach: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Run a command in the running container: an ``ExecResult``, or with ``stream=True`` an
        :class:`ExecStream` to iterate and ``.wait()`` on (always an exit code).

        ``detach=True`` (``docker exec -d``) returns the handle once the command started, its
        output going nowhere; ``timeout``: seconds until :class:`Timeout` (the command is not
        killed). As :meth:`containerkit.Container.exec`."""
        argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
        if not argv:
            raise InvalidArgument("exec: no command given")
        body = _wire.exec_body(
            argv,
            env=env,
            user=user,
            workdir=workdir,
            tty=tty,
            stdin=stdin and not detach,
            privileged=privileged,
        )
        exec_id = self._transport.post_json(f"{self._url}/exec", body=body)["Id"]
        if detach:
            self._transport.request("POST", f"/exec/{exec_id}/start", body={"Detach": True, "Tty": tty})
            return ExecStream(self._transport, exec_id, None, tty=tty, stdin=False)
        raw = self._transport.hijack("POST", f"/exec/{exec_id}/start", body={"Detach": False, "Tty": tty})
        handle = ExecStream(self._transport, exec_id, raw, tty=tty, stdin=stdin)
        if stream:
            return handle
        with handle:
            out, err = handle.communicate(timeout=timeout)
            return ExecResult(handle.wait(timeout=timeout), out, err)

    def put(
        self,
        path: str,
        data: bytes | IO[bytes] | Iterable[bytes] | str | os.PathLike[str],
        *,
        owner: tuple[int, int] | None = None,
        copy_uid_gid: bool = False,
        no_overwrite_dir_non_dir: bool = False,
    ) -> None:
        """Copy into the container, also before start: ``data`` is a tar archive (bytes, a binary
        file object or an iterable of chunks, sent as it is read) that is extracted at ``path``
        (a directory), or a host path copied into ``path`` (into it when it is a directory, else
        as it), packed as it is sent. ``owner`` sets the uid/gid of a host path's entries;
        ``copy_uid_gid`` gives everything to the container's user (``docker cp -a``)."""
        params: dict[str, Any] = {"path": path}
        if copy_uid_gid:
            params["copyUIDGID"] = "1"
        if no_overwrite_dir_non_dir:
            params["noOverwriteDirNonDir"] = "1"
        if not isinstance(data, (str, os.PathLike)):
            if owner is not None:
                raise InvalidArgument("owner: only for a host path (a tar keeps its own uid/gid)")
            self._put_archive(params, data)
            return
        source = Path(os.fspath(data))
        if not source.exists() and not source.is_symlink():
            raise NotFound(f"no such host path: {source}")
        target = path.rstrip("/") or "/"
        if self._is_dir(target):
            params["path"], name = target, source.name
        else:
            parent, _, name = target.rpartition("/")
            params["path"] = parent or "/"
            if not self._is_dir(params["path"]):
                # a missing parent is made, as the Engine makes it: the entry carries the path
                params["path"], name = "/", target.lstrip("/")
        chunks = _tar_chunks(source, name, owner)
        try:
            self._put_archive(params, chunks)
        finally:
            chunks.close()

    def _put_archive(self, params: dict[str, Any], archive: bytes | IO[bytes] | Iterable[bytes]) -> None:
        self._transport.request(
            "PUT",
            f"{self._url}/archive",
            params=params,
            data=archive,
            headers={"Content-Type": "application/x-tar"},
            timeout=None,
        )

    def _is_dir(self, path: str) -> bool:
        try:
            mode = int(self.stat_path(path).get("mode") or 0)
        except NotFound:
            return False
        return stat_mod.S_ISDIR(mode) or bool(mode & (1 << 31))  # unix mode, or Go's os.ModeDir

    def get(self, path: str) -> bytes:
        """A tar archive of ``path`` in the container (like ``docker cp`` / ``GET archive``), in
        memory: for large paths use :meth:`get_archive`."""
        chunks, _ = self.get_archive(path)
        return b"".join(chunks)

    def get_archive(self, path: str) -> tuple[Iterator[bytes], dict[str, Any]]:
        """A tar of ``path`` as chunks in the order they arrive, and the stat of ``path``."""
        reply = self._transport.request(
            "GET", f"{self._url}/archive", params={"path": path}, timeout=None, stream=True
        )
        try:
            stat = self._decode_stat(reply.headers.get("X-Docker-Container-Path-Stat", ""), path)
        except BaseException:
            reply.close()
            raise
        return reply.chunks(), stat

    def stat_path(self, path: str) -> dict[str, Any]:
        """docker's ``X-Docker-Container-Path-Stat``: name, size, mode, mtime, linkTarget."""
        reply = self._transport.request("HEAD", f"{self._url}/archive", params={"path": path})
        return self._decode_stat(reply.headers.get("X-Docker-Container-Path-Stat", ""), path)

    def _decode_stat(self, header: str, path: str) -> dict[str, Any]:
        try:
            data = json.loads(base64.b64decode(header))
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise NotFound(f"Could not find the file {path} in container {self.name}")
        return data

    # -- observation ------------------------------------------------------------------------

    def stats(self) -> Stats:
        data = self._transport.get_json(f"{self._url}/stats", params={"stream": False, "one-shot": True})
        if _wire.parse_time(data.get("read")) is None:  # docker's answer for a stopped container
            raise NotRunning(f"container {self.name} is not running")
        return _wire.stats_from_wire(data, host_memory=self._host_memory())

    def _host_memory(self) -> int | None:
        """The daemon host's RAM: docker reports it as the limit of a container without one."""
        info = self._transport.get_json("/info")
        total = (info or {}).get("MemTotal")
        return total if isinstance(total, int) else None

    def top(self) -> dict[str, Any]:
        """docker's ``top`` shape: ``{"Titles": [...], "Processes": [[...], ...]}``."""
        data: dict[str, Any] = self._transport.get_json(f"{self._url}/top")
        return data

    # -- its filesystem as changes, an image, a tar -----------------------------------------

    def diff(self) -> builtins.list[Change]:
        """``docker diff``: the paths it changed (C), added (A) or deleted (D) over its image."""
        return [Change.from_wire(item) for item in self._transport.get_json(f"{self._url}/changes") or ()]

    def commit(
        self,
        repository: str | None = None,
        tag: str | None = None,
        *,
        changes: Iterable[str] = (),
        message: str | None = None,
        author: str | None = None,
        pause: bool = True,
    ) -> Image:
        """``docker commit`` (``POST /commit``): its writable layer as a new image."""
        params: dict[str, Any] = {
            "container": self.id,
            "repo": repository,
            "tag": tag,
            "comment": message,
            "author": author,
            "pause": pause,
            "changes": list(changes),
        }
        reply = self._transport.post_json("/commit", params=params, body={}, timeout=None)
        return _wire.image_from_wire(self._transport.get_json(f"/images/{quote(reply['Id'], safe='')}/json"))

    def export(self) -> Iterator[bytes]:
        """``docker export``: its root filesystem as tar chunks, in the order they arrive."""
        reply = self._transport.request("GET", f"{self._url}/export", timeout=None, stream=True)
        return reply.chunks()


def _time_text(value: Any) -> str | None:
    return str(value) if value and not str(value).startswith("0001-01-01") else None


class ContainerCollection:
    """``client.containers``: create, run, get, list and prune containers."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def create(self, spec: ContainerSpec | None = None, /, **fields: Any) -> Container:
        """Create (not start) a container from a spec, or from the spec's fields as keywords."""
        if spec is None:
            spec = ContainerSpec.from_kwargs(**fields)
        elif fields:
            spec = attrs.evolve(spec, **fields)
        created = self._transport.post_json(
            "/containers/create", params={"name": spec.name}, body=_wire.create_body(spec)
        )
        return self.get(created["Id"])

    def run(
        self,
        image: str | Image,
        command: Sequence[str] | str | None = None,
        /,
        **fields: Any,
    ) -> Container:
        """Create and start a container (``docker run -d``); see :class:`ContainerSpec`."""
        if isinstance(command, str):
            command = ["sh", "-c", command]
        container = self.create(ContainerSpec.from_kwargs(image=image, command=command, **fields))
        try:
            container.start()
        except BaseException:
            if container.spec.auto_remove:
                with contextlib.suppress(NotFound):
                    container.remove(force=True)
            raise
        return container

    def get(self, ref: str) -> Container:
        """By full id, unique id prefix, or name (with or without the leading ``/``)."""
        return Container(self._transport, self._transport.get_json(f"{_path(ref)}/json"))

    def list(
        self, *, all: bool = False, filters: Mapping[str, Any] | None = None
    ) -> builtins.list[Container]:
        """Running containers (``all=True``: every one), newest first, filtered like docker's
        ``ps --filter`` (``status``, ``name``, ``id``, ``label``, ``ancestor``)."""
        entries = self._transport.get_json(
            "/containers/json", params={"all": all, "filters": _wire.filters_param(filters)}
        )
        found = []
        for entry in entries or ():
            try:
                found.append(self.get(entry["Id"]))
            except NotFound:
                continue  # removed between the list and the inspect
        return found

    def prune(self, *, filters: Mapping[str, Any] | None = None) -> builtins.list[str]:
        """Remove every stopped container; the ids removed."""
        data = self._transport.post_json(
            "/containers/prune", params={"filters": _wire.filters_param(filters)}, timeout=None
        )
        return list((data or {}).get("ContainersDeleted") or [])


_PIPE_CHUNK = 1 << 20


def _tar_chunks(source: Path, name: str, owner: tuple[int, int] | None) -> Generator[bytes, None, None]:
    """A tar of host path ``source`` (its top entry named ``name``) as it is written: tarfile
    writes into a pipe from a thread, so memory stays bounded whatever the size. Closing the
    generator early closes the pipe, which ends the writer."""
    read_fd, write_fd = os.pipe()
    errors: list[BaseException] = []

    def reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
        if owner is not None:
            info.uid, info.gid = owner
            info.uname = info.gname = ""
        return info

    def write() -> None:
        try:
            with os.fdopen(write_fd, "wb") as out, tarfile.open(fileobj=out, mode="w|") as tar:
                tar.add(source, arcname=name, recursive=True, filter=reset)
        except BrokenPipeError:
            pass  # the reader stopped early
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=write, name="tar-writer", daemon=True)
    thread.start()
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            while chunk := pipe.read(_PIPE_CHUNK):
                yield chunk
    finally:
        thread.join()
    if errors:
        raise InvalidArgument(f"packing {source}: {errors[0]}")
