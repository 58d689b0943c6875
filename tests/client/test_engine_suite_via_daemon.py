"""The Engine's container tests, run with ``engine`` bound to a Client on a real containerkitd.

Same test functions, same assertions: what passes here behaves the same in-process and remote.
"""

from __future__ import annotations

from tests.engine.test_containers import *  # noqa: F403
