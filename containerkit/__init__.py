"""containerkit: Linux containers from Python.

``Engine(root=...)`` runs containers in this process (no daemon); ``Client(...)`` drives a
containerkitd; both are a :class:`Backend` (:mod:`containerkit.api`), so code typed against it
runs on either. The models in :mod:`containerkit.spec` describe containers; every error is a
:class:`ContainerkitError`.
"""

from typing import TYPE_CHECKING, Any

from containerkit.errors import (
    CommandNotFound,
    Conflict,
    ContainerkitError,
    IntegrityError,
    InvalidArgument,
    InvalidReference,
    NotFound,
    NotModified,
    NotRunning,
    RuntimeFailure,
    Timeout,
    Unavailable,
    UnsafeArchive,
)

if TYPE_CHECKING:
    from containerkit import wait
    from containerkit.api import Backend, ContainerHandle, ExecHandle, NetworkHandle
    from containerkit.client import Client
    from containerkit.engine import Container, Engine, Network
    from containerkit.images.registry.auth import RegistryAuth, RegistryOptions
    from containerkit.spec import (
        BuildEvent,
        Change,
        ContainerSpec,
        Event,
        ExecResult,
        Health,
        Healthcheck,
        HistoryEntry,
        Image,
        ImageConfig,
        Mount,
        PortBinding,
        ProgressEvent,
        RegistryData,
        Resources,
        RestartPolicy,
        Stats,
        Volume,
    )

__version__ = "0.1.0"

# The engine pulls in the whole runtime; shims, the fork server and the CLI import this
# package too and must not pay for it, so those names load on first use.
_SPEC = (
    "BuildEvent",
    "Change",
    "ContainerSpec",
    "Event",
    "ExecResult",
    "Health",
    "Healthcheck",
    "HistoryEntry",
    "Image",
    "ImageConfig",
    "Mount",
    "PortBinding",
    "ProgressEvent",
    "RegistryData",
    "Resources",
    "RestartPolicy",
    "Stats",
    "Volume",
)
_LAZY = {
    # the models: attrs builds each class when its module is run (about half a millisecond a
    # class), which ``containerkit --version`` and ``--help`` need not pay
    **dict.fromkeys(_SPEC, "containerkit.spec"),
    "Engine": "containerkit.engine",
    "Container": "containerkit.engine",
    "Network": "containerkit.engine",
    "Client": "containerkit.client",
    # credentials and settings for pulls and pushes (a Client takes the same RegistryAuth)
    "RegistryAuth": "containerkit.images.registry.auth",
    "RegistryOptions": "containerkit.images.registry.auth",
    # protocols only, but a client machine loads nothing it does not use
    "Backend": "containerkit.api",
    "ContainerHandle": "containerkit.api",
    "ExecHandle": "containerkit.api",
    "NetworkHandle": "containerkit.api",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "wait":
        value: Any = importlib.import_module("containerkit.wait")
        globals()[name] = value
        return value
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'containerkit' has no attribute {name!r}")


__all__ = [
    "Backend",
    "BuildEvent",
    "Change",
    "Client",
    "CommandNotFound",
    "Conflict",
    "Container",
    "ContainerHandle",
    "ContainerSpec",
    "ContainerkitError",
    "Engine",
    "Event",
    "ExecHandle",
    "ExecResult",
    "Health",
    "Healthcheck",
    "HistoryEntry",
    "Image",
    "ImageConfig",
    "IntegrityError",
    "InvalidArgument",
    "InvalidReference",
    "Mount",
    "Network",
    "NetworkHandle",
    "NotFound",
    "NotModified",
    "NotRunning",
    "PortBinding",
    "ProgressEvent",
    "RegistryAuth",
    "RegistryData",
    "RegistryOptions",
    "Resources",
    "RestartPolicy",
    "RuntimeFailure",
    "Stats",
    "Timeout",
    "Unavailable",
    "UnsafeArchive",
    "Volume",
    "__version__",
    "wait",
]
