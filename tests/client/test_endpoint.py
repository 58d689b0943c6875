"""Finding the daemon and failing clearly when it is not there: no daemon needed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerkit.errors as ck_errors
from containerkit.client import Client, TLSConfig
from containerkit.client._endpoint import DEFAULT_SOCKET, endpoint_from_env, parse_host


@pytest.fixture
def listening(tmp_path: Path) -> Iterator[Path]:
    """A real unix socket that accepts connections (nobody answers HTTP on it)."""
    path = tmp_path / "ck.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    yield path
    server.close()


# -- from_env: the resolution order ---------------------------------------------------------------


def test_containerkit_host_wins_over_docker_host() -> None:
    env = {"CONTAINERKIT_HOST": "unix:///a/ck.sock", "DOCKER_HOST": "unix:///b/docker.sock"}
    assert Client.from_env(env).base_url == "unix:///a/ck.sock"


def test_docker_host_when_containerkit_host_is_unset_or_empty() -> None:
    assert Client.from_env({"DOCKER_HOST": "unix:///b/docker.sock"}).base_url == "unix:///b/docker.sock"
    env = {"CONTAINERKIT_HOST": "", "DOCKER_HOST": "tcp://10.0.0.1:2375"}
    assert Client.from_env(env).base_url == "tcp://10.0.0.1:2375"


def test_user_socket_under_xdg_runtime_dir_when_it_exists(tmp_path: Path) -> None:
    sock_dir = tmp_path / "containerkit"
    sock_dir.mkdir()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_dir / "containerkit.sock"))
    try:
        client = Client.from_env({"XDG_RUNTIME_DIR": str(tmp_path)})
        assert client.base_url == f"unix://{sock_dir}/containerkit.sock"
    finally:
        server.close()


def test_system_socket_when_the_user_socket_is_missing(tmp_path: Path) -> None:
    endpoint = endpoint_from_env({"XDG_RUNTIME_DIR": str(tmp_path)})
    assert endpoint.url == f"unix://{DEFAULT_SOCKET}"
    assert endpoint.also_tried == (str(tmp_path / "containerkit" / "containerkit.sock"),)
    assert endpoint_from_env({}).url == f"unix://{DEFAULT_SOCKET}"


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTAINERKIT_HOST", "unix:///from/os/environ.sock")
    assert Client.from_env().base_url == "unix:///from/os/environ.sock"
    assert Client().base_url == "unix:///from/os/environ.sock"


def test_tls_files_from_the_cert_path(tmp_path: Path) -> None:
    endpoint = endpoint_from_env(
        {"DOCKER_HOST": "tcp://daemon.example:2376", "DOCKER_CERT_PATH": str(tmp_path)}
    )
    assert endpoint.tls == TLSConfig(
        str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    )
    plain = endpoint_from_env({"CONTAINERKIT_HOST": "tcp://daemon.example"})
    assert plain.tls is None and plain.port == 2375


def test_address_forms() -> None:
    assert parse_host("/run/x.sock").url == "unix:///run/x.sock"
    assert parse_host("tcp://h", tls=("ca", "cert", "key")).port == 2376
    assert parse_host("https://h:3000").port == 3000
    for bad in ("ssh://user@host", "npipe:////./pipe/docker_engine", "unix://relative.sock", "tcp://"):
        with pytest.raises(ck_errors.InvalidArgument, match="daemon address"):
            parse_host(bad)


# -- no daemon: one clear error ----------------------------------------------------------------------


def _unavailable(client: Client) -> ck_errors.DaemonUnavailable:
    with pytest.raises(ck_errors.DaemonUnavailable) as caught:
        client.ping()
    error = caught.value
    assert isinstance(error, ck_errors.Unavailable)
    assert error.__cause__ is None and error.__suppress_context__  # no requests traceback attached
    return error


def test_missing_socket_names_the_path_and_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "nothing-here.sock"
    message = str(_unavailable(Client(f"unix://{path}")))
    assert f"no containerkitd socket at {path}" in message
    assert "start containerkitd" in message and "CONTAINERKIT_HOST" in message


def test_missing_default_socket_lists_what_was_looked_at(tmp_path: Path) -> None:
    client = Client.from_env({"XDG_RUNTIME_DIR": str(tmp_path)})
    if Path(DEFAULT_SOCKET).exists():
        pytest.skip(f"a daemon socket exists at {DEFAULT_SOCKET}")
    message = str(_unavailable(client))
    assert DEFAULT_SOCKET in message and str(tmp_path / "containerkit" / "containerkit.sock") in message


def test_stale_socket(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.close()  # the file stays, nobody listens
    assert f"nothing listens on {path}" in str(_unavailable(Client(f"unix://{path}")))


def test_not_a_socket(tmp_path: Path) -> None:
    path = tmp_path / "file.sock"
    path.write_text("")
    assert f"{path} exists but is not a unix socket" in str(_unavailable(Client(f"unix://{path}")))


def test_tcp_refused_names_host_and_port() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    message = str(_unavailable(Client(f"tcp://127.0.0.1:{port}")))
    assert f"tcp://127.0.0.1:{port}" in message


def test_a_listener_that_does_not_speak_http(listening: Path) -> None:
    client = Client(f"unix://{listening}", timeout=0.5)
    with pytest.raises((ck_errors.Timeout, ck_errors.DaemonUnavailable), match=str(listening)):
        client.ping()


def test_permission_denied_names_mode_and_owner() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to make a socket another user may not open")
    directory = Path(tempfile.mkdtemp(prefix="ck-perm-", dir="/tmp"))  # pytest's tmp is 0700
    directory.chmod(0o755)
    path = directory / "ck.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    path.chmod(0o600)
    client = Client(f"unix://{path}")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: an unprivileged user trying the root-only socket
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                client.ping()
            except ck_errors.DaemonUnavailable as exc:
                os.write(write_end, str(exc).encode())
                code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    server.close()
    shutil.rmtree(directory)
    assert os.waitstatus_to_exitcode(status) == 0, message
    assert f"permission denied on the containerkitd socket {path}" in message
    assert "mode 0600" in message and "owner root:root" in message


def test_the_client_imports_no_kernel_layer() -> None:
    """A client machine needs none of engine/, runtime/, linux/ (nor their dependencies)."""
    script = (
        "import sys, containerkit.client\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('containerkit'))\n"
        "allowed = ('containerkit', 'containerkit.errors', 'containerkit.spec', 'containerkit._model',"
        " 'containerkit.times')\n"
        "ours = ('containerkit.client', 'containerkit.dockerapi')\n"  # dockerapi: pure JSON shapes
        "print([m for m in loaded if m not in allowed and not m.startswith(ours)])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
