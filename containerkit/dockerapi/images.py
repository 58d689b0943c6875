"""Image inspect and list shapes, and inspect back to an ``Image``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from containerkit.dockerapi.times import ZERO_TIME, parse_time, rfc3339
from containerkit.spec import Image, ImageConfig

__all__ = ["image_config_json", "image_from_wire", "image_inspect", "image_summary"]


def image_config_json(config: ImageConfig) -> dict[str, Any]:
    """An image's ``Config`` with the keys dockerd always shows (null or empty when unset)."""
    result = config.to_oci()
    result.setdefault("Env", [])
    result.setdefault("Cmd", None)
    result.setdefault("Entrypoint", None)
    result.setdefault("WorkingDir", "")
    result.setdefault("User", "")
    result.setdefault("Labels", None)
    result.setdefault("ExposedPorts", None)
    result.setdefault("Volumes", None)
    return result


def image_inspect(image: Image, *, driver: str) -> dict[str, Any]:
    """``GET /images/{name}/json``; ``driver`` is the storage driver's name."""
    return {
        "Id": image.id,
        "RepoTags": list(image.tags),
        "RepoDigests": list(image.digests),
        "Parent": "",
        "Comment": "",
        "Created": rfc3339(image.created) if image.created else "",
        "DockerVersion": "",
        "Author": image.author,
        "Config": image_config_json(image.config),
        "Architecture": image.architecture,
        "Os": image.os,
        "Size": image.size,
        "GraphDriver": {"Name": driver, "Data": None},
        "RootFS": {"Type": "layers", "Layers": list(image.layers)},
        "Metadata": {"LastTagTime": ZERO_TIME},
    }


def image_summary(image: Image) -> dict[str, Any]:
    """One entry of ``GET /images/json``."""
    return {
        "Id": image.id,
        "ParentId": "",
        "RepoTags": list(image.tags),
        "RepoDigests": list(image.digests),
        "Created": int(image.created.timestamp()) if image.created else 0,
        "Size": image.size,
        "SharedSize": -1,
        "Labels": dict(image.config.labels) or {},
        "Containers": -1,
    }


def image_from_wire(data: Mapping[str, Any]) -> Image:
    """An ``Image`` from ``GET /images/{name}/json``."""
    return Image(
        id=data["Id"],
        tags=tuple(t for t in data.get("RepoTags") or () if t != "<none>:<none>"),
        digests=tuple(d for d in data.get("RepoDigests") or () if d != "<none>@<none>"),
        created=parse_time(data.get("Created")),
        size=int(data.get("Size") or 0),
        architecture=data.get("Architecture") or "amd64",
        os=data.get("Os") or "linux",
        config=ImageConfig.from_oci(data.get("Config")),
        layers=tuple((data.get("RootFS") or {}).get("Layers") or ()),
        author=str(data.get("Author") or ""),
    )
