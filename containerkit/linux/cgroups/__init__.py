"""Cgroups behind one manager interface: v2 on unified hosts, v1 on hybrid and legacy ones.

``open_cgroup(name)`` probes the host (statfs magic of ``/sys/fs/cgroup``) and returns the
matching :class:`CgroupManager`; pass ``root=`` and ``mode=`` to drive a fake cgroupfs.
"""

from __future__ import annotations

from .base import CgroupManager, CgroupStats
from .probe import Mode, exists_anywhere, list_cgroups, open_cgroup, probe, remove_if_empty
from .v1 import CgroupV1Manager
from .v2 import CgroupV2Manager, shares_to_weight

__all__ = [
    "CgroupManager",
    "CgroupStats",
    "CgroupV1Manager",
    "CgroupV2Manager",
    "Mode",
    "exists_anywhere",
    "list_cgroups",
    "open_cgroup",
    "probe",
    "remove_if_empty",
    "shares_to_weight",
]
