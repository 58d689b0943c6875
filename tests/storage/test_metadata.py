"""The SQLite metadata database and its stores: schema, references by query, containers and their
lifecycle states, volumes, concurrency."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from containerkit.errors import Conflict, InvalidArgument, NotFound
from containerkit.spec import ContainerStatus, allowed_transition, transition
from containerkit.storage.metadata import (
    SCHEMA_VERSION,
    ContainerRecord,
    Database,
    ImageLayer,
    ImageRecord,
    LayerRecord,
    VolumeRecord,
)


def _d(n: int) -> str:
    return f"sha256:{n:064x}"


def _image(n: int, chains: tuple[int, ...] = (1,)) -> ImageRecord:
    layers = tuple(
        ImageLayer(_d(c), _d(c), _d(100 + c), 10, "application/vnd.oci.image.layer.v1.tar") for c in chains
    )
    return ImageRecord(
        id=_d(1000 + n), manifest_digest=_d(2000 + n), config_json="{}", layers=layers, size=10
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Database]:
    s = Database(tmp_path / "meta.db")
    yield s
    s.close()


def test_schema_is_versioned_and_wal(store: Database) -> None:
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    Database(store.path).close()  # re-opening an existing database is a no-op


def test_images_tags_and_references(store: Database) -> None:
    store.layers.add(LayerRecord(chain_id=_d(1), diff_id=_d(1), blob_digest=_d(101), size=10, media_type="x"))
    store.images.add(
        _image(1), tags=["docker.io/library/a:latest"], digests=[f"docker.io/library/a@{_d(2001)}"]
    )
    assert store.images.resolve_tag("docker.io/library/a:latest") == _d(1001)
    assert store.images.resolve_digest(f"docker.io/library/a@{_d(2001)}") == _d(1001)
    assert store.images.get(_d(1001)).chain_ids == (_d(1),)  # type: ignore[union-attr]
    assert store.images.ids_with_prefix(f"{1001:064x}"[:60]) == [_d(1001)]
    assert store.images.referenced_blobs() == {_d(1001), _d(2001), _d(101)}
    assert store.layers.unreferenced() == []
    assert store.images.set_tag("docker.io/library/b:latest", _d(1001)) is None
    with pytest.raises(NotFound):
        store.images.set_tag("docker.io/library/b:latest", _d(9))
    assert [t for t, _ in store.images.tags(_d(1001))] == [
        "docker.io/library/a:latest",
        "docker.io/library/b:latest",
    ]
    assert store.images.remove_tag("docker.io/library/a:latest") == _d(1001)
    assert store.images.remove_tag("docker.io/library/a:latest") is None
    assert store.images.remove(_d(1001))
    assert store.images.tags() == [] and store.images.referenced_blobs() == set()
    assert store.layers.unreferenced() == [_d(1)]


def test_failed_transaction_rolls_back(store: Database) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.images.add(_image(1), tags=["docker.io/library/a:latest"])
        raise RuntimeError("boom")
    assert store.images.get(_d(1001)) is None and store.images.tags() == []


def _container(cid: str, name: str, image: str = _d(1001)) -> ContainerRecord:
    return ContainerRecord(
        id=cid,
        name=name,
        image_id=image,
        image_ref="a",
        created=1.0,
        spec_json="{}",
        labels_json="{}",
        runtime="builtin",
    )


def test_containers(store: Database) -> None:
    a = "a1" + "0" * 62
    b = "a2" + "0" * 62
    store.containers.add(_container(a, "/web"))
    store.containers.add(_container(b, "db"))
    with pytest.raises(Conflict) as info:
        store.containers.add(_container("c" * 64, "web"))
    assert str(info.value) == f'the container name "/web" is already in use by container "{a}"'
    assert store.containers.find(a).name == "web"
    assert store.containers.find("web").id == a
    assert store.containers.find("/db").id == b
    assert store.containers.find("a1").id == a
    with pytest.raises(InvalidArgument):
        store.containers.find("a")
    with pytest.raises(NotFound, match="No such container: nope"):
        store.containers.find("nope")
    assert store.containers.update(a, spec_json='{"x": 1}').spec_json == '{"x": 1}'
    with pytest.raises(InvalidArgument):
        store.containers.update(a, id="x")
    with pytest.raises(Conflict):
        store.containers.rename(a, "db")
    assert store.containers.rename(a, "/front").name == "front"
    assert store.containers.using_image(_d(1001)) == [a, b]
    assert {c.id for c in store.containers.all()} == {a, b}
    store.containers.remove(a)
    with pytest.raises(NotFound):
        store.containers.get(a)
    with pytest.raises(NotFound):
        store.containers.remove(a)


def test_volumes(store: Database) -> None:
    store.volumes.add(VolumeRecord(name="data", created=1.0, labels_json='{"a":"b"}', mountpoint="/v/data"))
    with pytest.raises(Conflict):
        store.volumes.add(VolumeRecord(name="data", created=2.0))
    assert store.volumes.get("data").mountpoint == "/v/data"
    assert [v.name for v in store.volumes.all()] == ["data"]
    store.volumes.remove("data")
    with pytest.raises(NotFound, match="no such volume: data"):
        store.volumes.get("data")


def test_threads_share_a_store(store: Database) -> None:
    store.images.add(_image(1))

    def worker(n: int) -> None:
        for i in range(20):
            store.images.set_tag(f"docker.io/library/t{n}:{i}", _d(1001))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.images.tags()) == 80


def _add_containers(path: Path, prefix: str) -> None:
    store = Database(path)
    for i in range(30):
        # every process also tries the same shared names: exactly one may win each
        for name in (f"{prefix}-{i}", f"shared-{i}"):
            with contextlib.suppress(Conflict):
                store.containers.add(_container(f"{prefix}{i:062x}"[:64] + name, name))
    store.close()


def test_two_processes_never_lose_or_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    Database(path).close()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_containers, args=(path, p)) for p in ("aa", "bb")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = Database(path)
    names = [c.name for c in store.containers.all()]
    store.close()
    assert len(names) == len(set(names)) == 90


def test_connections_of_finished_threads_are_closed(tmp_path: Path) -> None:
    """A daemon serves each client on its own thread: their connections must not pile up."""
    store = Database(tmp_path / "meta.db")

    def open_fds() -> int:
        found = 0
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                found += "meta.db" in os.readlink(f"/proc/self/fd/{fd}")
        return found

    for _ in range(40):
        worker = threading.Thread(target=store.containers.all)
        worker.start()
        worker.join()
    # each new thread's connection closed those of the threads before it: what is open is this
    # thread's and the last worker's (3 files each: database, WAL, shared memory), not 41
    assert open_fds() <= 6
    store.close()


def test_a_new_thread_takes_over_a_finished_threads_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a connection costs 0.3-0.5 ms: a daemon's per-request threads reuse them. One
    left inside a transaction (its thread ended in the middle) is rolled back first."""
    store = Database(tmp_path / "meta.db")
    opened: list[object] = []
    connect = sqlite3.connect

    def counting(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        opened.append(conn)
        return conn

    monkeypatch.setattr(sqlite3, "connect", counting)

    def in_thread(fn: Callable[[], object]) -> None:
        worker = threading.Thread(target=fn)
        worker.start()
        worker.join()

    for _ in range(10):
        in_thread(store.containers.all)
    assert len(opened) == 1
    in_thread(lambda: store._connection().execute("BEGIN IMMEDIATE"))  # ends holding the write lock
    in_thread(lambda: store.containers.add(_container("e" * 64, "after")))
    assert len(opened) == 1
    assert [c.name for c in store.containers.all()] == ["after"]
    store.close()


def test_a_record_moves_only_along_the_allowed_transitions(store: Database) -> None:
    cid = "d" * 64
    store.containers.add(_container(cid, "job"), state=ContainerStatus.CREATING, owner="1:2")
    assert store.containers.unfinished() == [(cid, ContainerStatus.CREATING, "1:2")]
    with pytest.raises(NotFound):  # hidden while being created
        store.containers.find("job")
    with pytest.raises(Conflict, match=f"container {cid} cannot go from creating to removing"):
        store.containers.set_state(cid, ContainerStatus.REMOVING)
    store.containers.set_state(cid, "created")  # a str names its status
    assert store.containers.unfinished() == [] and store.containers.find("job").id == cid
    store.containers.set_state(cid, ContainerStatus.REMOVING, owner="3:4")
    store.containers.set_state(cid, ContainerStatus.REMOVING, owner="5:6")  # another remover joins
    assert store.containers.unfinished() == [(cid, "removing", "5:6")]
    store.containers.set_state(cid, ContainerStatus.CREATED)  # a failed removal: visible again
    with pytest.raises(Conflict, match="from created to creating"):
        store.containers.set_state(cid, ContainerStatus.CREATING)
    with pytest.raises(InvalidArgument, match="container state must be one of creating, created, removing"):
        store.containers.set_state(cid, ContainerStatus.RUNNING)  # the Task's status, not a record's
    with pytest.raises(NotFound, match="No such container: nope"):
        store.containers.set_state("nope", ContainerStatus.CREATED)


def test_lazy_commits_switch_the_sync_once_and_a_durable_one_syncs_again(store: Database) -> None:
    def synchronous() -> int:
        return int(store.query("PRAGMA synchronous")[0][0])  # 1 NORMAL, 2 FULL

    statements: list[str] = []
    store._connection().set_trace_callback(statements.append)
    for name in ("one", "two"):
        with store.lazy_sync():
            store.containers.add(_container(name * 32, name))
            assert synchronous() == 1
    assert [s for s in statements if "synchronous =" in s] == ["PRAGMA synchronous = NORMAL"]
    with store.transaction():  # a durable commit outside a lazy block
        assert synchronous() == 2
    with store.transaction(), store.lazy_sync():  # inside it, the caller's setting stands
        assert synchronous() == 2
    with store.lazy_sync(), store.transaction():
        assert synchronous() == 1
        with store.transaction():  # joins the lazy one
            assert synchronous() == 1
    store.containers.set_state("one" * 32, ContainerStatus.REMOVING)
    assert synchronous() == 2
    store._connection().set_trace_callback(None)


def test_a_name_is_taken_by_a_container_being_created_too(store: Database) -> None:
    assert not store.containers.name_taken("busy")
    store.containers.add(_container("b" * 64, "busy"), state=ContainerStatus.CREATING, owner="1:2")
    assert store.containers.name_taken("busy") and not store.containers.name_taken("free")


def test_a_claim_moves_a_record_only_from_the_state_it_names(store: Database) -> None:
    cid = "c" * 64
    store.containers.add(_container(cid, "claimed"), state=ContainerStatus.CREATED)
    assert store.containers.claim(cid, ContainerStatus.CREATED, ContainerStatus.REMOVING, owner="1:2")
    # the second claimant finds it removing already: it does not take it over
    assert not store.containers.claim(cid, ContainerStatus.CREATED, ContainerStatus.REMOVING, owner="3:4")
    assert store.containers.unfinished() == [(cid, ContainerStatus.REMOVING, "1:2")]
    assert not store.containers.claim("nope", ContainerStatus.CREATED, ContainerStatus.REMOVING, owner="1:2")
    with pytest.raises(Conflict, match="cannot go from creating to removing"):
        store.containers.claim(cid, ContainerStatus.CREATING, ContainerStatus.REMOVING, owner="1:2")


def test_container_status_is_its_name_and_its_transitions_are_one_table() -> None:
    assert ContainerStatus.RUNNING == "running" and f"{ContainerStatus.PAUSED}" == "paused"
    assert ContainerStatus.of("dead") is ContainerStatus.DEAD
    with pytest.raises(
        InvalidArgument, match=r"container status must be one of creating, created, .*'zombie'"
    ):
        ContainerStatus.of("zombie")
    for status in ContainerStatus:  # every container can be removed, except one not yet created
        assert allowed_transition(status, ContainerStatus.REMOVING) == (
            status is not ContainerStatus.CREATING
        )
    assert allowed_transition("running", "paused") and allowed_transition("paused", "running")
    assert not allowed_transition("running", "running") and not allowed_transition("created", "paused")
    assert not allowed_transition("exited", "paused") and not allowed_transition("dead", "paused")
    assert transition("exited", "running", container="web") is ContainerStatus.RUNNING
    with pytest.raises(Conflict, match="container web cannot go from exited to paused"):
        transition("exited", "paused", container="web")


def test_a_foreign_file_is_no_metadata_database(tmp_path: Path) -> None:
    # Another program's metadata.db (dockerd's boltdb has that name) gets a clear error, and an
    # Engine on such a root says which file, instead of sqlite's bare "file is not a database".
    path = tmp_path / "metadata.db"
    path.write_bytes(b"\x00" * 4096 + b"not sqlite")
    with pytest.raises(InvalidArgument, match=r"metadata\.db is not a containerkit metadata database"):
        Database(path)
    assert path.read_bytes().endswith(b"not sqlite")  # left as it was
