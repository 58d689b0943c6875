"""The engine layer: ``Engine`` and its collections of containers, images, volumes and networks."""

from containerkit.engine.containers import Container, ContainerCollection
from containerkit.engine.engine import DEFAULT_ROOT, Engine
from containerkit.engine.images import ImageCollection
from containerkit.engine.networks import Network, NetworkCollection
from containerkit.engine.volumes import VolumeCollection

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
