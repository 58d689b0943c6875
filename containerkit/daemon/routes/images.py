"""``/images``: list, inspect, history, tag, delete, load, get/save, prune, ``create`` (pull, or
import with ``fromSrc``), ``push``, and ``/distribution/{name}/json``.

Pull and push stream docker's progress messages (:mod:`containerkit.daemon.progress`) and use
only the credentials the client sends in ``X-Registry-Auth``, as dockerd does.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from containerkit.daemon.errors import NotImplementedYet
from containerkit.daemon.progress import Progress, progress_response
from containerkit.daemon.registry import request_auth
from containerkit.daemon.server import Request, Response, json_response
from containerkit.dockerapi import filters_from_query, image_inspect, image_summary
from containerkit.dockerapi.registry import distribution_inspect
from containerkit.engine.frontend import parse_image_reference as parse_reference
from containerkit.errors import InvalidArgument, NotFound
from containerkit.spec import ImageConfig, ProgressEvent

if TYPE_CHECKING:
    from containerkit.daemon.app import DaemonApp
    from containerkit.daemon.router import Router

__all__ = ["register"]

_DIGEST_LINE = re.compile(r"^(.+): digest: (sha256:[0-9a-f]{64}) size: ([0-9]+)$")
"""The engine's last line of a pushed tag, as dockerd prints it."""

LOAD_LIMIT = 64 << 30
"""Largest image archive accepted by ``POST /images/load``."""


def _progress(items: list[dict[str, Any]]) -> Response:
    return Response(200, stream=[json.dumps(item).encode() + b"\r\n" for item in items])


def register(router: Router, app: DaemonApp) -> None:
    images = app.engine.images
    spool_dir = app.engine.root / "tmp"

    def list_(request: Request) -> Response:
        filters = filters_from_query(request.qjson("filters"))
        if request.q("filter"):
            filters.setdefault("reference", []).append(request.q("filter") or "")
        return json_response(
            [image_summary(i) for i in images.list(all=request.qbool("all"), filters=filters or None)]
        )

    def inspect(request: Request) -> Response:
        return json_response(
            image_inspect(images.get(request.params["name"]), driver=app.engine.snapshots.driver)
        )

    def tag(request: Request) -> Response:
        repo = request.q("repo")
        if not repo:
            raise InvalidArgument("repo: the new name is missing (?repo=)")
        target = f"{repo}:{request.q('tag')}" if request.q("tag") else repo
        image = images.get(request.params["name"])
        images.tag(image.id, target)
        return Response(201, b"", None)

    def remove(request: Request) -> Response:
        lines = images.remove(request.params["name"], force=request.qbool("force"))
        result = []
        for line in lines:
            key, _, value = line.partition(": ")
            result.append({key: value})
        return json_response(result)

    def load(request: Request) -> Response:
        spool_dir.mkdir(parents=True, exist_ok=True)
        with request.spool_body(LOAD_LIMIT, str(spool_dir)) as spool:
            loaded = images.load(Path(spool.name))
        lines = []
        for image in loaded:
            for name in image.tags or ():
                lines.append({"stream": f"Loaded image: {name}\n"})
            if not image.tags:
                lines.append({"stream": f"Loaded image ID: {image.id}\n"})
        return _progress(lines)

    def save(names: list[str]) -> Response:
        if not names:
            raise InvalidArgument("names: no image given to save")
        for name in names:
            images.get(name)  # 404 before the 200
        spool_dir.mkdir(parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(dir=spool_dir, prefix="save-", suffix=".tar")
        os.close(fd)
        try:
            images.save(names, Path(path))
            f = open(path, "rb")  # noqa: SIM115 - closed by the stream
        finally:
            os.unlink(path)

        def chunks() -> Iterator[bytes | None]:
            with f:
                while chunk := f.read(1 << 20):
                    yield chunk

        return Response(200, content_type="application/x-tar", stream=chunks())

    def get_one(request: Request) -> Response:
        return save([request.params["name"]])

    def get_many(request: Request) -> Response:
        return save(request.query.get("names", []))

    def prune(request: Request) -> Response:
        filters = filters_from_query(request.qjson("filters"))
        unsupported = set(filters) - {"dangling"}
        if unsupported:
            raise InvalidArgument(f"invalid filter(s) for image prune: {sorted(unsupported)}")
        deleted = images.prune()
        return json_response(
            {"ImagesDeleted": [{"Deleted": i} for i in deleted] or None, "SpaceReclaimed": 0}
        )

    def create(request: Request) -> Response:
        source = request.q("fromSrc")
        if source is not None:
            return _import(request, source)
        name = request.q("fromImage")
        if not name:
            raise InvalidArgument("fromImage: the image to pull is missing")
        tag = request.q("tag") or ""
        ref = name
        if tag:
            ref = f"{name}@{tag}" if tag.startswith("sha256:") else f"{name}:{tag}"
        try:
            parsed = parse_reference(ref)
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid reference format: {exc}") from None
        platform = request.q("platform") or None
        auth = request_auth(request)
        gone = threading.Event()  # the client left: the pull stops

        def pull(progress: Progress) -> object:
            return images.pull(parsed.canonical, platform=platform, auth=auth, progress=progress, cancel=gone)

        return progress_response(
            pull, name="ckd-pull", image_id=parsed.tag or parsed.digest or "", cancel=gone
        )

    def push(request: Request) -> Response:
        """One tag, or without one every local tag of the repository (dockerd's rule)."""
        name = request.params["name"]
        tag = request.q("tag") or ""
        try:
            parsed = parse_reference(f"{name}:{tag}" if tag else name)
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid reference format: {exc}") from None
        if parsed.digest is not None:
            raise InvalidArgument(f"cannot push a digest reference: {parsed.familiar}")
        if tag or ":" in name.rsplit("/", 1)[-1]:
            try:
                images.get(parsed.canonical)
            except NotFound:
                raise NotFound(f"An image does not exist locally with the tag: {parsed.familiar}") from None
            refs = [parsed.canonical]
        else:
            refs = _local_tags(parsed.name)
            if not refs:
                raise NotFound(f"An image does not exist locally with the tag: {parsed.familiar_name}")
        auth = request_auth(request)

        def run(progress: Progress) -> list[dict[str, Any]]:
            """The engine streams docker's lines (``The push refers to repository``, layers,
            ``<tag>: digest: D size: N``); the aux object per tag is read from the last."""
            aux: list[dict[str, Any]] = []
            announced = False

            def relay(event: ProgressEvent) -> None:
                nonlocal announced
                if not event.id and event.action.startswith("The push refers to repository"):
                    if announced:
                        return  # once per push, as dockerd, however many tags
                    announced = True
                match = _DIGEST_LINE.match(event.action) if not event.id else None
                if match:
                    digest, size = match.group(2), int(match.group(3))
                    aux.append(
                        {"progressDetail": {}, "aux": {"Tag": match.group(1), "Digest": digest, "Size": size}}
                    )
                progress(event)

            for ref in refs:
                images.push(ref, auth=auth, progress=relay)
            return aux

        return progress_response(run, name="ckd-push", last=lambda aux: aux)

    def _local_tags(repository: str) -> list[str]:
        """Every local tag of ``repository``, as canonical references, by tag."""
        found = set()
        for image in images.list():
            for text in image.tags:
                ref = parse_reference(text)
                if ref.name == repository and ref.tag:
                    found.add((ref.tag, ref.canonical))
        return [canonical for _tag, canonical in sorted(found)]

    def distribution(request: Request) -> Response:
        try:
            parsed = parse_reference(request.params["name"])
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid reference format: {exc}") from None
        data = images.get_registry_data(parsed.canonical, auth=request_auth(request))
        return json_response(distribution_inspect(data))

    def _import(request: Request, source: str) -> Response:
        if source != "-":
            raise NotImplementedYet(
                "importing from a URL is not supported; send the tar as the body (fromSrc=-)"
            )
        repo = request.q("repo")
        ref = f"{repo}:{request.q('tag')}" if repo and request.q("tag") else repo
        spool_dir.mkdir(parents=True, exist_ok=True)
        config = ImageConfig.from_changes(request.query.get("changes", []))
        with request.spool_body(LOAD_LIMIT, str(spool_dir)) as spool:
            image = images.import_rootfs(Path(spool.name), ref, config=config)
        return _progress([{"status": image.id}])

    def unsupported(request: Request) -> Response:
        raise NotImplementedYet(f"{request.path} is not implemented by containerkitd yet")

    router.add("GET", "/images/json", list_)
    router.add("POST", "/images/load", load)
    router.add("GET", "/images/get", get_many)
    router.add("POST", "/images/prune", prune)
    router.add("POST", "/images/create", create)
    router.add("GET", "/images/search", unsupported)
    router.add("GET", "/images/{name:.+}/json", inspect)
    router.add("GET", "/images/{name:.+}/get", get_one)
    router.add("POST", "/images/{name:.+}/tag", tag)
    router.add("POST", "/images/{name:.+}/push", push)
    router.add("DELETE", "/images/{name:.+}", remove)
    router.add("GET", "/distribution/{name:.+}/json", distribution)
