"""A container's log driver in the library, as docker's: ``none`` keeps nothing and reading is
docker's error, ``local`` keeps the output, ``json-file`` rotates at ``max-size`` keeping
``max-file`` files (the newest lines), and an unknown driver or a bad option is refused at
create with docker's message."""

from __future__ import annotations

from pathlib import Path

import pytest

import containerkit as ck
from containerkit.errors import InvalidArgument, NotSupported

from .conftest import IMAGE

LINES = "i=0; while [ $i -lt 400 ]; do echo line-$i-................................; i=$((i+1)); done"


def test_none_local_and_json_file_rotation(engine: ck.Engine) -> None:
    made: list[ck.Container] = []
    try:
        silent = engine.containers.run(IMAGE, ["echo", "unseen"], log_driver="none", network="none")
        made.append(silent)
        assert silent.wait(timeout=30) == 0
        with pytest.raises(NotSupported, match="configured logging driver does not support reading"):
            silent.logs()
        kept = engine.containers.run(IMAGE, ["echo", "kept locally"], log_driver="local", network="none")
        made.append(kept)
        kept.wait(timeout=30)
        assert kept.logs() == b"kept locally\n"
        rotated = engine.containers.run(
            IMAGE,
            ["sh", "-c", LINES],
            log_driver="json-file",
            log_opts={"max-size": "2k", "max-file": "2"},
            network="none",
        )
        made.append(rotated)
        rotated.wait(timeout=30)
        lines = rotated.logs().decode().splitlines()
        assert lines[-1].startswith("line-399-") and 0 < len(lines) < 400
        files = [p for p in Path(rotated.task.state_dir).iterdir() if p.name.startswith("container.log")]
        assert 1 <= len(files) <= 2 and all(f.stat().st_size <= 4096 for f in files), files
    finally:
        for c in made:
            c.remove(force=True)


def test_unknown_driver_and_bad_option_are_refused(engine: ck.Engine) -> None:
    with pytest.raises(InvalidArgument, match="logger: no log driver named 'gelfish' is registered"):
        engine.containers.create(image=IMAGE, command=["true"], log_driver="gelfish")
    with pytest.raises(InvalidArgument, match="max-size"):
        engine.containers.create(image=IMAGE, command=["true"], log_opts={"max-size": "lots"})
