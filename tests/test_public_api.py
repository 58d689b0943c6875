"""The public namespace is a contract: adding or removing a name is a decision, not an accident."""

import containerkit


def test_all_is_pinned() -> None:
    assert sorted(containerkit.__all__) == [
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


def test_every_exported_name_exists() -> None:
    for name in containerkit.__all__:
        assert hasattr(containerkit, name), name
