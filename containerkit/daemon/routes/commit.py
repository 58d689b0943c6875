"""``POST /commit``, ``GET /containers/{id}/changes``, ``GET /containers/{id}/export`` and
``GET /images/{name}/history``: a container's filesystem as changes, an image or a tar, and an
image's steps, in dockerd's shapes (engine/changes, commit, export and history do the work)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from containerkit.daemon.server import Request, Response, json_response
from containerkit.errors import InvalidArgument
from containerkit.spec import HistoryEntry, ImageConfig

if TYPE_CHECKING:
    from containerkit.daemon.app import DaemonApp
    from containerkit.daemon.router import Router

__all__ = ["history_item", "register"]


def history_item(entry: HistoryEntry) -> dict[str, Any]:
    """One ``GET /images/{name}/history`` item (``Tags`` null where dockerd has none)."""
    return {
        "Id": entry.id,
        "Created": int(entry.created.timestamp()) if entry.created else 0,
        "CreatedBy": entry.created_by,
        "Tags": list(entry.tags) or None,
        "Size": entry.size,
        "Comment": entry.comment,
    }


def _body_changes(body: Any) -> list[str]:
    """The commit body (a container ``Config``) as changes laid over the container's config:
    dockerd takes its set fields over the container's (``merge``)."""
    if body is None:
        return []
    if not isinstance(body, dict):
        raise InvalidArgument("request body: expected a container Config object")
    set_fields = {key: value for key, value in body.items() if value not in (None, "", [], {})}
    if not set_fields:
        return []
    try:
        return ImageConfig.from_oci(set_fields).to_changes()
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"request body: invalid Config ({exc})") from None


def register(router: Router, app: DaemonApp) -> None:
    engine = app.engine

    def commit(request: Request) -> Response:
        name = request.q("container")
        if not name:
            raise InvalidArgument("container: the container to commit is missing (?container=)")
        container = engine.containers.get(name)
        pause = request.q("pause")
        image = container.commit(
            request.q("repo") or None,
            request.q("tag") or None,
            changes=[*_body_changes(request.json()), *request.query.get("changes", [])],
            message=request.q("comment") or None,
            author=request.q("author") or None,
            pause=True if pause in (None, "") else request.qbool("pause"),
        )
        return json_response({"Id": image.id}, status=201)

    def changes(request: Request) -> Response:
        found = engine.containers.get(request.params["id"]).diff()
        # dockerd answers null, not [], for a container that changed nothing
        return json_response([{"Path": c.path, "Kind": c.kind_code} for c in found] or None)

    def export(request: Request) -> Response:
        stream = engine.containers.get(request.params["id"]).export()
        return Response(200, content_type="application/x-tar", stream=stream)

    def history(request: Request) -> Response:
        return json_response([history_item(e) for e in engine.images.history(request.params["name"])])

    router.add("POST", "/commit", commit)
    router.add("GET", "/containers/{id}/changes", changes)
    router.add("GET", "/containers/{id}/export", export)
    router.add("GET", "/images/{name:.+}/history", history)
