"""Image, volume and network verbs through the entry point."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli.conftest import IMAGE, Ck


def test_images_tag_save_load_rmi(ck: Ck, tmp_path: Path) -> None:
    listing = ck("images").stdout.splitlines()
    assert listing[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(line.startswith("example/busybox ") and " latest " in line for line in listing[1:])
    image_id = json.loads(ck("inspect", "--type", "image", IMAGE).stdout)[0]["Id"]
    assert image_id[7:19] in ck("images", "-q").stdout.split()

    assert ck("tag", IMAGE, "cli/copy:v1").exit_code == 0
    record = [json.loads(line) for line in ck("images", "--format", "json").stdout.splitlines()]
    assert {"Repository": "cli/copy", "Tag": "v1"}.items() <= next(
        r for r in record if r["Repository"] == "cli/copy"
    ).items()

    archive = tmp_path / "copy.tar"
    saved = ck("save", "-o", str(archive), "cli/copy:v1")
    assert saved.exit_code == 0 and archive.stat().st_size > 1_000_000
    assert ck("save", "--format", "oci", "-o", str(tmp_path / "layout"), "cli/copy:v1").exit_code == 0
    assert (tmp_path / "layout" / "index.json").exists()

    removed = ck("rmi", "cli/copy:v1")
    assert removed.stdout == "Untagged: cli/copy:v1\n"
    assert "cli/copy" not in ck("images").stdout
    loaded = ck("load", "-i", str(archive))
    assert loaded.exit_code == 0 and "Loaded image: cli/copy:v1" in loaded.stdout.splitlines()
    assert ck("rmi", "cli/copy:v1").exit_code == 0
    missing = ck("rmi", "no/such:image")
    assert missing.exit_code == 1 and missing.stderr.startswith("containerkit: ")


def test_import_with_change(ck: Ck, busybox_rootfs_tar: Path) -> None:
    imported = ck(
        "import", "--change", 'ENTRYPOINT ["echo"]', "--change", "ENV GREETING=hi",
        "--change", "WORKDIR /etc", str(busybox_rootfs_tar), "cli/imported:1",
    )  # fmt: skip
    assert imported.exit_code == 0 and imported.stdout.startswith("sha256:")
    config = json.loads(ck("inspect", "cli/imported:1").stdout)[0]["Config"]
    assert (
        config["Entrypoint"] == ["echo"]
        and config["Env"] == ["GREETING=hi"]
        and config["WorkingDir"] == "/etc"
    )
    assert ck("run", "--rm", "--network", "none", "cli/imported:1", "ok").stdout == "ok\n"
    assert ck("rmi", "cli/imported:1").stdout.splitlines()[-1].startswith("Deleted: sha256:")
    bad = ck("import", "--change", "FROM x", str(busybox_rootfs_tar))
    assert bad.exit_code == 125


def test_volumes(ck: Ck) -> None:
    assert ck("volume", "create", "--label", "k=v", "cli-vol").stdout == "cli-vol\n"
    assert "cli-vol" in ck("volume", "ls", "-q").stdout.split()
    assert ck("volume", "ls", "--filter", "label=k=v", "-q").stdout == "cli-vol\n"
    doc = json.loads(ck("volume", "inspect", "cli-vol").stdout)[0]
    assert doc["Name"] == "cli-vol" and doc["Labels"] == {"k": "v"} and os.path.isdir(doc["Mountpoint"])
    ck("run", "--rm", "--network", "none", "-v", "cli-vol:/data", IMAGE, "sh", "-c", "echo kept > /data/f")
    assert (
        ck("run", "--rm", "--network", "none", "-v", "cli-vol:/data", IMAGE, "cat", "/data/f").stdout
        == "kept\n"
    )

    ck("create", "--name", "cli-vol-user", "--network", "none", "-v", "cli-vol:/data", IMAGE)
    busy = ck("volume", "rm", "cli-vol")
    assert busy.exit_code == 1 and "in use" in busy.stderr
    assert ck("rm", "cli-vol-user").exit_code == 0
    assert ck("volume", "rm", "cli-vol").stdout == "cli-vol\n"

    anonymous = ck("volume", "create").stdout.strip()
    assert len(anonymous) == 64
    pruned = ck("volume", "prune", "-f")
    assert anonymous in pruned.stdout
    assert anonymous not in ck("volume", "ls", "-q").stdout


def test_networks(ck: Ck) -> None:
    created = ck("network", "create", "--label", "k=v", "cli-net")
    if created.exit_code != 0:
        pytest.skip(f"networks unavailable here: {created.stderr.strip()}")
    try:
        assert "cli-net" in ck("network", "ls").stdout
        assert ck("network", "ls", "--filter", "label=k=v", "--format", "{{.Name}}").stdout == "cli-net\n"
        ck("run", "-d", "--name", "cli-net-a", "--network", "cli-net", IMAGE, "sleep", "60")
        doc = json.loads(ck("network", "inspect", "cli-net").stdout)[0]
        assert doc["Name"] == "cli-net" and doc["Labels"] == {"k": "v"}
        assert [c["Name"] for c in doc["Containers"].values()] == ["cli-net-a"]
        ip = ck("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "cli-net-a").stdout.strip()
        assert ip.count(".") == 3
        assert ck("network", "rm", "cli-net").exit_code == 1  # in use
        assert ck("network", "disconnect", "cli-net", "cli-net-a").exit_code == 0
        assert ck("network", "connect", "cli-net", "cli-net-a").exit_code == 0
        ck("rm", "-f", "cli-net-a")
    finally:
        ck("rm", "-f", "cli-net-a")
        assert ck("network", "rm", "cli-net").exit_code == 0
    assert "cli-net" not in ck("network", "ls").stdout
