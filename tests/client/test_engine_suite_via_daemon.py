"""The Engine's container tests, run with ``engine`` bound to a Client on a real containerkitd.

Same test functions, same assertions: what passes here behaves the same in-process and remote.
Every test of ``tests/engine/test_containers.py`` passes through the daemon. Where the wire
differs from the Engine by design (docker semantics win), :mod:`tests.client.test_client` says so:
creating a volume that exists returns it instead of raising Conflict, and ``Container.spec`` is
rebuilt from inspect, so it includes what the daemon filled in from the image (Cmd, Env).
"""

from __future__ import annotations

from tests.engine.test_containers import *  # noqa: F403
