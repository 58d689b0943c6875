"""The engine layer: ``Engine`` and its collections of containers, images, volumes and networks.

Names load on first use, as ``containerkit``'s own do: a front-end that only needs
:mod:`containerkit.engine.frontend` (the CLI on a remote daemon) does not pay for the engine.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from containerkit.engine.containers import Container, ContainerCollection
    from containerkit.engine.engine import DEFAULT_ROOT, Engine
    from containerkit.engine.images import ImageCollection
    from containerkit.engine.networks import Network, NetworkCollection
    from containerkit.engine.volumes import VolumeCollection

_LAZY = {
    "Container": "containerkit.engine.containers",
    "ContainerCollection": "containerkit.engine.containers",
    "DEFAULT_ROOT": "containerkit.engine.engine",
    "Engine": "containerkit.engine.engine",
    "ImageCollection": "containerkit.engine.images",
    "Network": "containerkit.engine.networks",
    "NetworkCollection": "containerkit.engine.networks",
    "VolumeCollection": "containerkit.engine.volumes",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'containerkit.engine' has no attribute {name!r}")


__all__ = [
    "DEFAULT_ROOT",
    "Container",
    "ContainerCollection",
    "Engine",
    "ImageCollection",
    "Network",
    "NetworkCollection",
    "VolumeCollection",
]
