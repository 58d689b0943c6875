"""The one exception tree of containerkit.

Every layer raises these; the daemon maps each class to an HTTP status in exactly one
place and the client maps the status (and the ``kind`` field of the error body) back.

    ContainerkitError                 500
    ├── InvalidArgument               400   bad input: a field, a reference, an archive entry
    │   ├── InvalidReference          400   an image reference that does not parse
    │   └── UnsafeArchive             400   a layer or archive entry that would escape its root
    ├── NotFound                      404   no such image, container, volume, network, path
    │   └── CommandNotFound           404   the command given to a container or exec does not exist
    ├── Conflict                      409   name in use, container running, resource still in use
    │   └── NotRunning                409   operation needs a running container
    ├── NotModified                   304   start of a running / stop of a stopped container
    ├── Unauthorized                  401   a registry refused the credentials (or their absence)
    ├── NotSupported                  501   a request the configuration cannot serve (logs of driver none)
    ├── Unavailable                   503   a kernel feature, binary or daemon that is not there
    │   └── DaemonUnavailable         503   no containerkitd answers on the socket
    ├── IntegrityError                500   content does not match its digest, truncated blob
    ├── RuntimeFailure                500   the runtime or shim failed to start a container
    ├── RegistryError                 500   a registry failed or answered an error (dockerd says 500 too)
    └── Timeout                       504   waiting for a container or a stream took too long
"""

from __future__ import annotations

__all__ = [
    "BuildError",
    "CommandNotFound",
    "Conflict",
    "ContainerkitError",
    "DaemonUnavailable",
    "IntegrityError",
    "InvalidArgument",
    "InvalidReference",
    "NotFound",
    "NotModified",
    "NotRunning",
    "NotSupported",
    "RegistryError",
    "RuntimeFailure",
    "Timeout",
    "Unauthorized",
    "Unavailable",
    "UnsafeArchive",
    "error_class_for",
]


class ContainerkitError(Exception):
    """Root of every error containerkit raises on purpose."""

    status: int = 500
    kind: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(ContainerkitError, ValueError):
    status = 400
    kind = "invalid_argument"


class InvalidReference(InvalidArgument):
    kind = "invalid_reference"


class UnsafeArchive(InvalidArgument):
    kind = "unsafe_archive"


class NotFound(ContainerkitError, LookupError):
    status = 404
    kind = "not_found"


class CommandNotFound(NotFound):
    kind = "command_not_found"


class Conflict(ContainerkitError):
    status = 409
    kind = "conflict"


class NotRunning(Conflict):
    kind = "not_running"


class NotModified(ContainerkitError):
    status = 304
    kind = "not_modified"


class Unauthorized(ContainerkitError):
    """A registry (or its token server) refused the credentials, or asked for some and had none."""

    status = 401
    kind = "unauthorized"


class NotSupported(ContainerkitError):
    status = 501
    kind = "not_supported"


class Unavailable(ContainerkitError):
    status = 503
    kind = "unavailable"


class DaemonUnavailable(Unavailable):
    kind = "daemon_unavailable"


class IntegrityError(ContainerkitError):
    status = 500
    kind = "integrity"


class RuntimeFailure(ContainerkitError):
    status = 500
    kind = "runtime_failure"


class RegistryError(ContainerkitError):
    """A registry answered an error other than not-found or unauthorized, or could not be reached.

    ``registry_status`` is the registry's HTTP status (``None`` when it was not reached) and ``codes``
    the error codes of its JSON body (``TOOMANYREQUESTS``, ``BLOB_UPLOAD_INVALID``, ...). They do not
    cross the daemon's wire; the message names the repository and the registry's own words.
    """

    status = 500
    kind = "registry"

    def __init__(
        self, message: str, *, registry_status: int | None = None, codes: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.registry_status = registry_status
        self.codes = codes


class Timeout(ContainerkitError, TimeoutError):
    status = 504
    kind = "timeout"


class BuildError(ContainerkitError):
    """A build step failed: a RUN's command exited non-zero (``exit_code``, docker's
    ``The command '...' returned a non-zero code: N``), or a step could not be done."""

    status = 400
    kind = "build"

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


_BY_KIND: dict[str, type[ContainerkitError]] = {
    cls.kind: cls
    for cls in (
        ContainerkitError,
        InvalidArgument,
        InvalidReference,
        UnsafeArchive,
        NotFound,
        CommandNotFound,
        Conflict,
        NotRunning,
        NotModified,
        Unauthorized,
        NotSupported,
        Unavailable,
        DaemonUnavailable,
        IntegrityError,
        RuntimeFailure,
        RegistryError,
        Timeout,
        BuildError,
    )
}

_BY_STATUS: dict[int, type[ContainerkitError]] = {
    400: InvalidArgument,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    304: NotModified,
    501: NotSupported,
    503: Unavailable,
    504: Timeout,
}


def error_class_for(status: int, kind: str | None = None) -> type[ContainerkitError]:
    """The class to raise for an error that crossed the wire (``kind`` wins over ``status``)."""
    if kind is not None and kind in _BY_KIND:
        return _BY_KIND[kind]
    return _BY_STATUS.get(status, ContainerkitError)
