"""The :mod:`containerkit.api` tests of the Engine, run with ``engine`` bound to a Client on a
real containerkitd: both sides keep the same promises."""

from __future__ import annotations

from tests.engine.test_backend_api import *  # noqa: F403
