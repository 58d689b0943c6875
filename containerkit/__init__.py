"""containerkit: Linux containers from Python.

``Engine(root=...)`` runs containers in this process (no daemon); the models in
:mod:`containerkit.spec` describe them; every error is a :class:`ContainerkitError`.
"""

from containerkit.engine import Container, Engine
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
from containerkit.spec import (
    ContainerSpec,
    ExecResult,
    Image,
    ImageConfig,
    Mount,
    PortBinding,
    Resources,
    Stats,
    Volume,
)

__version__ = "0.1.0"

__all__ = [
    "CommandNotFound",
    "Conflict",
    "Container",
    "ContainerSpec",
    "ContainerkitError",
    "Engine",
    "ExecResult",
    "Image",
    "ImageConfig",
    "IntegrityError",
    "InvalidArgument",
    "InvalidReference",
    "Mount",
    "NotFound",
    "NotModified",
    "NotRunning",
    "PortBinding",
    "Resources",
    "RuntimeFailure",
    "Stats",
    "Timeout",
    "Unavailable",
    "UnsafeArchive",
    "Volume",
    "__version__",
]
