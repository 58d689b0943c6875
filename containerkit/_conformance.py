"""Type-checked, never run: ``Engine`` and ``Client`` (and their handles) satisfy :mod:`containerkit.api`.

mypy checks each assignment below against the protocol it is typed as, so a method or keyword
that one side gains and the other lacks fails ``mypy containerkit`` (strict in pyproject).
Nothing imports this module: it would pull in both the engine and the client.
"""

from __future__ import annotations

from containerkit import api
from containerkit.client import Client
from containerkit.client.attach import AttachStream as ClientAttachStream
from containerkit.client.containers import Container as ClientContainer
from containerkit.client.exec import ExecStream
from containerkit.client.networks import Network as ClientNetwork
from containerkit.engine import Engine
from containerkit.engine.attach import AttachStream as EngineAttachStream
from containerkit.engine.containers import Container as EngineContainer
from containerkit.engine.networks import Network as EngineNetwork
from containerkit.runtime.exec import ExecProcess


def _engine_conforms(
    engine: Engine,
    container: EngineContainer,
    network: EngineNetwork,
    process: ExecProcess,
    attached: EngineAttachStream,
) -> list[object]:
    backend: api.Backend = engine
    containers: api.Containers = engine.containers
    images: api.Images = engine.images
    volumes: api.Volumes = engine.volumes
    networks: api.Networks = engine.networks
    registries: api.Registries = engine.registries
    handle: api.ContainerHandle = container
    network_handle: api.NetworkHandle = network
    exec_handle: api.ExecHandle = process
    attach_stream: api.AttachStream = attached
    return [
        backend,
        containers,
        images,
        volumes,
        networks,
        registries,
        handle,
        network_handle,
        exec_handle,
        attach_stream,
    ]


def _client_conforms(
    client: Client,
    container: ClientContainer,
    network: ClientNetwork,
    stream: ExecStream,
    attached: ClientAttachStream,
) -> list[object]:
    backend: api.Backend = client
    containers: api.Containers = client.containers
    images: api.Images = client.images
    volumes: api.Volumes = client.volumes
    networks: api.Networks = client.networks
    registries: api.Registries = client.registries
    handle: api.ContainerHandle = container
    network_handle: api.NetworkHandle = network
    exec_handle: api.ExecHandle = stream
    attach_stream: api.AttachStream = attached
    return [
        backend,
        containers,
        images,
        volumes,
        networks,
        registries,
        handle,
        network_handle,
        exec_handle,
        attach_stream,
    ]
