"""``get_logger``: a logger that is ``logging``'s own once used, and loads nothing before."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from containerkit._log import get_logger


def test_it_logs_through_the_named_logger(caplog: pytest.LogCaptureFixture) -> None:
    log = get_logger("containerkit.test-lazy")
    with caplog.at_level(logging.WARNING, logger="containerkit.test-lazy"):
        log.warning("cannot finish %s of container %s", "removal", "abc")
        log.info("not shown")
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("containerkit.test-lazy", "WARNING", "cannot finish removal of container abc")
    ]
    assert log.isEnabledFor(logging.WARNING)


def test_holding_one_imports_no_logging() -> None:
    code = (
        "import sys\nfrom containerkit._log import get_logger\nlog = get_logger('x')\n"
        "print('logging' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
