"""containerkit's client: ``Client(base_url)`` or ``Client.from_env()`` drives a containerkitd
(or any Docker-compatible daemon) with the in-process Engine's collections, methods, models and
exceptions, so code moves between local and remote by swapping one object.

Only :mod:`containerkit.spec` and :mod:`containerkit.errors` are imported from the rest of the
package: a client needs none of the kernel-facing layers.
"""

from containerkit.client._client import Client
from containerkit.client._endpoint import TLSConfig
from containerkit.client.attach import AttachStream
from containerkit.client.containers import Container, ContainerCollection
from containerkit.client.exec import ExecStream
from containerkit.client.images import ImageCollection
from containerkit.client.networks import Network, NetworkCollection
from containerkit.client.volumes import VolumeCollection

__all__ = [
    "AttachStream",
    "Client",
    "Container",
    "ContainerCollection",
    "ExecStream",
    "ImageCollection",
    "Network",
    "NetworkCollection",
    "TLSConfig",
    "VolumeCollection",
]
