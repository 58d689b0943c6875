"""AppArmor: is it on, the default container profile, loading it, and confining an exec.

The default profile has the rules of Docker's ``docker-default`` (moby's
``profiles/apparmor/template.go``, Apache License 2.0): file, network and capability access as
the other layers decide, but no mount, no writes to ``/proc`` outside the process's own entries
and ``/proc/sys/kernel/shm*``, nothing at all of ``sysrq-trigger`` and ``kcore``, no writes under
``/sys`` outside ``/sys/fs/cgroup``, nothing of ``/sys/firmware`` and ``/sys/kernel/security``;
signals and ptrace only among the profile's own processes (and from unconfined host ones).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from containerkit.errors import RuntimeFailure, Unavailable

__all__ = [
    "DEFAULT_PROFILE",
    "apply_exec_profile",
    "default_profile_text",
    "enabled",
    "ensure_loaded",
    "is_loaded",
    "unavailable_reason",
]

DEFAULT_PROFILE = "containerkit-default"
_ENABLED = Path("/sys/module/apparmor/parameters/enabled")
_PROFILES = Path("/sys/kernel/security/apparmor/profiles")
_TUNABLES = Path("/etc/apparmor.d/tunables/global")
_ABSTRACTIONS = Path("/etc/apparmor.d/abstractions/base")

# The body of docker-default, rule for rule; {name} and {daemon} are filled in.
_RULES = (
    "network,",
    "capability,",
    "file,",
    "umount,",
    "# host (unconfined) processes and the daemon may signal container processes",
    "signal (receive) peer=unconfined,",
    "signal (receive) peer={daemon},",
    "signal (send,receive) peer={name},",
    "",
    "deny @{{PROC}}/* w,  # no write to files directly in /proc",
    "# no write below /proc but in /proc/<pid>/** and /proc/sys/**",
    "deny @{{PROC}}/{{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}}/** w,",
    "deny @{{PROC}}/sys/[^k]** w,  # of /proc/sys only kernel/ ...",
    "deny @{{PROC}}/sys/kernel/{{?,??,[^s][^h][^m]**}} w,  # ... and in it only shm*",
    "deny @{{PROC}}/sysrq-trigger rwklx,",
    "deny @{{PROC}}/kcore rwklx,",
    "",
    "deny mount,",
    "",
    "deny /sys/[^f]*/** wklx,",
    "deny /sys/f[^s]*/** wklx,",
    "deny /sys/fs/[^c]*/** wklx,",
    "deny /sys/fs/c[^g]*/** wklx,",
    "deny /sys/fs/cg[^r]*/** wklx,",
    "deny /sys/firmware/** rwklx,",
    "deny /sys/kernel/security/** rwklx,",
    "",
    "# ps inside the container, and the host reading the container's processes",
    "ptrace (trace,read,tracedby,readby) peer={name},",
)


def enabled() -> bool:
    """Whether the running kernel has AppArmor on (``/sys/module/apparmor/parameters/enabled``)."""
    try:
        return _ENABLED.read_text().strip() == "Y"
    except OSError:
        return False


def unavailable_reason() -> str | None:
    """Why profiles cannot be loaded or applied here; None where they can."""
    if not _ENABLED.parent.parent.exists():
        return "this kernel has no AppArmor (/sys/module/apparmor is absent)"
    if not enabled():
        return f"AppArmor is disabled in this kernel ({_ENABLED} is not Y)"
    if shutil.which("apparmor_parser") is None:
        return "apparmor_parser is not installed (Debian's apparmor package)"
    return None


def default_profile_text(name: str = DEFAULT_PROFILE, *, daemon_profile: str = "unconfined") -> str:
    """The profile, named ``name``; the distribution's tunables and base abstraction are included
    where installed, as docker does."""
    lines = []
    if _TUNABLES.exists():
        lines.append("#include <tunables/global>")
    lines += ["", f"profile {name} flags=(attach_disconnected,mediate_deleted) {{"]
    if _ABSTRACTIONS.exists():
        lines.append("  #include <abstractions/base>")
    for rule in _RULES:
        if rule == "signal (receive) peer={daemon}," and daemon_profile == "unconfined":
            continue  # the rule above already says it
        lines.append(("  " + rule.format(name=name, daemon=daemon_profile)) if rule else "")
    lines.append("}")
    return "\n".join(lines) + "\n"


def is_loaded(name: str) -> bool:
    """Whether the kernel holds a profile called ``name``."""
    try:
        text = _PROFILES.read_text()
    except OSError:
        return False
    return any(line.rsplit(" (", 1)[0] == name for line in text.splitlines())


def ensure_loaded(name: str = DEFAULT_PROFILE) -> None:
    """Load the default profile as ``name`` (``apparmor_parser -Kr``) unless the kernel has it."""
    reason = unavailable_reason()
    if reason is not None:
        raise Unavailable(f"cannot load AppArmor profile {name}: {reason}")
    if is_loaded(name):
        return
    with tempfile.NamedTemporaryFile("w", prefix=f"{name}.", suffix=".profile") as f:
        f.write(default_profile_text(name))
        f.flush()
        result = subprocess.run(
            ["apparmor_parser", "-Kr", f.name], capture_output=True, text=True, check=False
        )
    if result.returncode != 0:
        raise RuntimeFailure(
            f"apparmor_parser -Kr (profile {name}): {result.stderr.strip() or result.returncode}"
        )


def apply_exec_profile(name: str) -> None:
    """Have the next ``execve`` of this process run under profile ``name``, as runc does."""
    data = f"exec {name}".encode()
    for path in ("/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            os.write(fd, data)
        except OSError as exc:
            raise RuntimeFailure(f"apply AppArmor profile {name!r} ({path}): {exc.strerror}") from exc
        finally:
            os.close(fd)
        return
    raise Unavailable(f"cannot apply AppArmor profile {name!r}: no /proc/self/attr/apparmor/exec")
