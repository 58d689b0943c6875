"""``--log-level debug`` shows containerkit's own debug lines, not those of the libraries it uses."""

from __future__ import annotations

import logging
from pathlib import Path

from containerkit.daemon.service import setup_logging


def test_debug_level_keeps_library_chatter_out(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    path = tmp_path / "containerkitd.log"
    try:
        setup_logging("debug", path)
        logging.getLogger("containerkit.daemon").debug("our own debug line")
        logging.getLogger("pyroute2.netlink.nlsocket").debug("netlink dump 0x1234")
        logging.getLogger("urllib3.connectionpool").debug("starting new connection")
        logging.getLogger("pyroute2.ipdb").warning("a library warning still counts")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    text = path.read_text()
    assert "our own debug line" in text
    assert "a library warning still counts" in text
    assert "netlink dump" not in text and "starting new connection" not in text
