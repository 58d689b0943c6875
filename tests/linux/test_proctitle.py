"""A process renamed with ``set_title``: ``/proc/<pid>/cmdline`` and ``comm`` read the new title
(for ``ps`` and ``docker top``), in a user namespace too, and the process goes on allocating (the
memory map handed back to the kernel is the one it had). Run in a child: a title is for life."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = """
import os, sys
from containerkit.linux.proctitle import set_title
set_title(["/sbin/docker-init", "--", "sleep", "300"], "docker-init-with-a-long-name")
blocks = [bytearray(1 << 20) for _ in range(64)]  # the heap still grows after the call
sys.stdout.buffer.write(open("/proc/self/cmdline", "rb").read() + b"|" + open("/proc/self/comm", "rb").read())
"""


@pytest.mark.parametrize("userns", [False, True], ids=["host", "userns"])
def test_cmdline_and_comm_read_the_new_title(userns: bool) -> None:
    prefix = ["unshare", "--user", "--map-root-user"] if userns else []
    result = subprocess.run([*prefix, sys.executable, "-c", CHILD], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"/sbin/docker-init\0--\0sleep\x00300\0|docker-init-wit\n"
