"""The rows of the metadata database as frozen records: what its stores take and return."""

from __future__ import annotations

from collections.abc import Callable

from containerkit._model import model

__all__ = [
    "AddressChooser",
    "ContainerRecord",
    "EndpointRecord",
    "ImageLayer",
    "ImageRecord",
    "LayerRecord",
    "NetworkRecord",
    "PortRecord",
    "RunRecord",
    "VolumeRecord",
]


@model
class ImageLayer:
    diff_id: str
    chain_id: str
    blob_digest: str
    blob_size: int
    media_type: str


@model(kw_only=True)
class ImageRecord:
    id: str
    manifest_digest: str | None
    config_json: str
    layers: tuple[ImageLayer, ...] = ()
    size: int = 0
    created: str | None = None
    architecture: str = ""
    os: str = ""
    added: float = 0.0

    @property
    def diff_ids(self) -> tuple[str, ...]:
        return tuple(layer.diff_id for layer in self.layers)

    @property
    def chain_ids(self) -> tuple[str, ...]:
        return tuple(layer.chain_id for layer in self.layers)


@model(kw_only=True)
class LayerRecord:
    chain_id: str
    diff_id: str
    blob_digest: str
    size: int
    media_type: str
    parent: str | None = None


@model(kw_only=True)
class ContainerRecord:
    id: str
    name: str
    image_id: str
    image_ref: str
    created: float
    spec_json: str
    labels_json: str = "{}"
    runtime: str = "builtin"
    extra_json: str = "{}"
    """What a front-end keeps with the container (the daemon: docker's create body), as JSON."""
    args_json: str | None = None
    """The argv its bundle runs (entrypoint and command resolved), as JSON; None for a
    container recorded before the column existed (then its bundle says)."""


@model(kw_only=True)
class RunRecord:
    """A container's last known run, kept so that a list reads no per-container file (the
    Task's state dir stays the truth; a listing re-reads it only for a container whose run
    changed behind the record's back: its shim dropped the running marker)."""

    container_id: str
    status: str
    """``created``, ``running``, ``paused``, ``exited`` or ``dead``."""
    pid: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    oom_killed: bool = False


@model(kw_only=True)
class VolumeRecord:
    name: str
    created: float
    labels_json: str = "{}"
    mountpoint: str = ""


@model(kw_only=True)
class NetworkRecord:
    id: str
    name: str
    bridge: str
    subnet: str
    gateway: str
    internal: bool = False
    labels_json: str = "{}"
    created: float = 0.0
    driver: str = "bridge"


@model(kw_only=True)
class EndpointRecord:
    network_id: str
    container_id: str
    position: int = 0
    aliases_json: str = "[]"
    ip: str | None = None
    mac: str | None = None
    host_ifname: str | None = None
    attached: bool = False


@model(kw_only=True)
class PortRecord:
    container_id: str
    protocol: str
    host_ip: str
    host_port: int
    container_port: int


AddressChooser = Callable[[set[str], set[str], EndpointRecord, NetworkRecord], tuple[str, str]]
"""``(attached, reserved, endpoint, network) -> (ip, mac)``: picks an address inside the
allocation transaction; ``reserved`` are the last addresses of detached endpoints."""
