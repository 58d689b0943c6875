"""The Dockerfile builder: docker's classic builder, with its cache, over the engine.

``Builder.build`` is what ``engine.images.build`` calls: the context directory (``.dockerignore``
applied), the Dockerfile parsed by :mod:`containerkit.dockerfile`, each step dispatched by
:class:`~containerkit.engine.builder.executor.Executor` (RUN as engine containers, COPY/ADD
layers written from the context, config steps derived), each step's image cached in the
metadata database under the classic builder's key, and the result tagged.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING

from containerkit.engine._recovery import SPOOL_DIR, owner_alive
from containerkit.errors import (
    Conflict,
    ContainerkitError,
    IntegrityError,
    InvalidArgument,
    InvalidReference,
    NotFound,
    UnsafeArchive,
)
from containerkit.images.reference import parse_reference
from containerkit.linux import staging
from containerkit.spec import BuildEvent, Image

if TYPE_CHECKING:
    from containerkit.dockerfile.ignore import DockerIgnore
    from containerkit.engine.containers import ContainerCollection
    from containerkit.engine.images import ImageCollection
    from containerkit.images.registry.auth import RegistryAuth

__all__ = ["BUILD_OWNER_LABEL", "Builder"]

BUILD_OWNER_LABEL = "containerkit.build.owner"
"""On intermediate containers: the building process (``<pid>:<start time>``).

Here, not in the executor: every Engine's recovery needs it, and the executor (the Dockerfile
language, tar and URL handling) is loaded by the first build only."""

_NETWORKS = ("bridge", "default", "none", "host")


def _pairs(value: Mapping[str, str] | Iterable[str] | None, what: str) -> dict[str, str]:
    """``{"k": "v"}`` or ``["k=v"]`` / ``["k:v"]`` (extra hosts as the CLI writes them)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    out = {}
    for item in value:
        sep = "=" if "=" in item else ":"
        key, found, val = str(item).partition(sep)
        if not found or not key:
            raise InvalidArgument(f"{what}: expected key{sep}value, got {item!r}")
        out[key] = val
    return out


class Builder:
    """Builds images on one engine's images and containers; keeps the build cache."""

    def __init__(
        self, images: ImageCollection, containers: ContainerCollection, spool: Path | None = None
    ) -> None:
        self.images = images
        self.containers = containers
        self.cache = images.build_cache
        self.spool = spool or images.content.root.parent / SPOOL_DIR
        """Where a context sent as a tar is unpacked (recovery reaps what a killed build left)."""

    def build(
        self,
        context: str | os.PathLike[str] | IO[bytes] = ".",
        dockerfile: str = "Dockerfile",
        tag: str | Iterable[str] | None = None,
        buildargs: Mapping[str, str | None] | None = None,
        target: str | None = None,
        labels: Mapping[str, str] | None = None,
        nocache: bool = False,
        cache_from: Iterable[str] = (),
        pull: bool = False,
        network: str = "bridge",
        extra_hosts: Mapping[str, str] | Iterable[str] | None = None,
        platform: str | None = None,
        rm: bool = True,
        forcerm: bool = False,
        progress: Callable[[BuildEvent], None] | None = None,
        *,
        dockerfile_text: str | None = None,
        ignore: DockerIgnore | None = None,
        auth: Mapping[str, RegistryAuth] | None = None,
        cancel: threading.Event | None = None,
    ) -> Image:
        tags = [tag] if isinstance(tag, str) else list(tag or ())
        refs = []
        for name in tags:
            try:
                ref = parse_reference(name)
            except InvalidArgument as exc:
                raise InvalidReference(f"invalid reference format: {name}: {exc}") from None
            if ref.digest is not None:
                raise InvalidReference(f"invalid reference format: {name} (a tag cannot be a digest)")
            refs.append(ref)
        if network not in _NETWORKS:
            raise InvalidArgument(f"network: expected one of {', '.join(_NETWORKS)}, got {network!r}")
        if isinstance(cache_from, str):
            cache_from = [cache_from]
        from containerkit.engine.builder.context import BuildContext
        from containerkit.engine.builder.executor import BuildOptions, Executor

        options = BuildOptions(
            dockerfile=dockerfile or "Dockerfile",
            dockerfile_text=dockerfile_text,
            tags=tuple(tags),
            buildargs=dict(buildargs or {}),
            target=target or None,
            labels=dict(labels or {}),
            nocache=bool(nocache),
            cache_from=tuple(cache_from),
            pull=bool(pull),
            network=network,
            extra_hosts=_pairs(extra_hosts, "extra_hosts"),
            platform=platform,
            rm=bool(rm),
            forcerm=bool(forcerm),
            auth=dict(auth or {}),
            cancel=cancel,
        )
        with self._context_dir(context) as directory:
            build_context = BuildContext(directory, ignore=ignore)
            executor = Executor(self.images, self.containers, self.cache, build_context, options, progress)
            image = executor.run()
        for ref in refs:
            self.images.tag(image.id, ref.canonical)
        if progress is not None:
            progress(BuildEvent(kind="built", id=image.id))
            for ref in refs:
                progress(BuildEvent(kind="tagged", text=ref.familiar))
        return self.images.get(image.id)

    @contextlib.contextmanager
    def _context_dir(self, context: str | os.PathLike[str] | IO[bytes]) -> Iterator[Path]:
        """A directory context as it is; a tar (plain or compressed, a file object) unpacked
        safely (as an untrusted layer is) into a held staging directory, removed after."""
        if not hasattr(context, "read"):
            yield Path(os.fspath(context))
            return
        # here, not at the top: every Engine makes a Builder, few of them build from a tar
        from containerkit.images.unpack import unpack_layer

        self.spool.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(dir=self.spool, prefix=f"build-context{staging.owner_tag()}"))
        fd = staging.hold_dir(directory)
        try:
            try:
                unpack_layer(context, directory, whiteouts="apply")  # type: ignore[arg-type]
            except (IntegrityError, UnsafeArchive, InvalidArgument) as exc:
                raise InvalidArgument(f"build context: not a valid tar archive: {exc}") from None
            yield directory
        finally:
            shutil.rmtree(directory, ignore_errors=True)
            os.close(fd)

    def prune(self) -> list[str]:
        """Forget the build cache: delete the images only build steps made (untagged, no
        container on them); the ids deleted."""
        deleted = []
        for image_id in sorted(self.cache.step_images()):
            try:
                image = self.images.get(image_id)
            except NotFound:
                continue
            if image.tags:
                continue
            with contextlib.suppress(Conflict, NotFound):
                self.images.remove(image_id)
                deleted.append(image_id)
        self.cache.clear()
        return deleted

    def recover(self) -> list[str]:
        """Remove the intermediate containers of builds whose process is gone (SIGKILLed)."""
        removed = []
        for container in self.containers.list(all=True, filters={"label": [BUILD_OWNER_LABEL]}):
            if owner_alive(container.labels.get(BUILD_OWNER_LABEL, "")):
                continue
            with contextlib.suppress(ContainerkitError):
                container.remove(force=True)
                removed.append(container.id)
        return removed
