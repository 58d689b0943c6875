"""The error tree: statuses and the kind that crosses the wire map back to the same class."""

import pytest

from containerkit import errors


@pytest.mark.parametrize(
    "cls",
    [
        errors.InvalidArgument,
        errors.InvalidReference,
        errors.UnsafeArchive,
        errors.NotFound,
        errors.CommandNotFound,
        errors.Conflict,
        errors.NotRunning,
        errors.NotModified,
        errors.Unavailable,
        errors.DaemonUnavailable,
        errors.IntegrityError,
        errors.RuntimeFailure,
        errors.Unauthorized,
        errors.RegistryError,
        errors.Timeout,
    ],
)
def test_round_trip_through_kind(cls: type[errors.ContainerkitError]) -> None:
    assert errors.error_class_for(cls.status, cls.kind) is cls


def test_status_alone_gives_the_family() -> None:
    assert errors.error_class_for(404) is errors.NotFound
    assert errors.error_class_for(409, "something-new") is errors.Conflict
    assert errors.error_class_for(418) is errors.ContainerkitError


def test_builtin_bases_for_callers_that_catch_them() -> None:
    assert issubclass(errors.NotFound, LookupError)
    assert issubclass(errors.InvalidArgument, ValueError)
    assert issubclass(errors.Timeout, TimeoutError)
    assert str(errors.NotFound("No such container: x")) == "No such container: x"


def test_registry_errors_keep_the_registry_status_and_codes() -> None:
    assert errors.error_class_for(401) is errors.Unauthorized
    err = errors.RegistryError(
        "registry 127.0.0.1:5000 answered 429", registry_status=429, codes=("TOOMANYREQUESTS",)
    )
    assert (err.status, err.registry_status, err.codes) == (500, 429, ("TOOMANYREQUESTS",))
    assert errors.error_class_for(err.status, err.kind) is errors.RegistryError
