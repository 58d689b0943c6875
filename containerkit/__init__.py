"""containerkit: Linux containers from Python."""

from containerkit.errors import (
    CommandNotFound,
    Conflict,
    ContainerkitError,
    InvalidArgument,
    NotFound,
    Unavailable,
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
)

__version__ = "0.1.0"
