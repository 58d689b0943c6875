"""Docker's seccomp profiles -> the OCI ``linux.seccomp`` object, and docker's ``--security-opt``.

A docker profile (``profiles/default.json`` here, or a user's) is more than an OCI object:
``archMap`` lists sub-architectures per native one, and each syscall group may be included or
excluded by architecture, by the container's bounding capabilities or by the kernel version.
:func:`to_oci` resolves those once, at create time, exactly as moby's
``profiles/seccomp/seccomp_linux.go`` does; runc and the built-in runtime then only load it.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from containerkit._model import model
from containerkit.errors import InvalidArgument

__all__ = [
    "DEFAULT_PROFILE",
    "SecurityOptions",
    "default_profile",
    "load_profile",
    "parse_security_opt",
    "seccomp_for",
    "split_no_new_privileges",
    "to_oci",
]

DEFAULT_PROFILE = Path(__file__).parent / "profiles" / "seccomp-default.json"
"""moby's ``default.json`` (Apache-2.0, see ``profiles/NOTICE``)."""

UNCONFINED = "unconfined"
BUILTIN = "builtin"

# Python's machine name -> Go's GOARCH -> libseccomp's name, as moby's goToNative maps it.
_GOARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "i386": "386",
    "i686": "386",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
_GO_TO_NATIVE = {"386": "x86", "mips64le": "mipsel64", "mipsle": "mipsel", "loong64": "loongarch64"}
_NATIVE_TO_SECCOMP = {
    "x86": "SCMP_ARCH_X86",
    "amd64": "SCMP_ARCH_X86_64",
    "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64",
    "mips64": "SCMP_ARCH_MIPS64",
    "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mipsel": "SCMP_ARCH_MIPSEL",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "riscv64": "SCMP_ARCH_RISCV64",
    "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X",
}
_OCI_KEYS = ("defaultAction", "defaultErrnoRet", "architectures", "flags", "listenerPath", "listenerMetadata")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def native_arch() -> str:
    """moby's ``goToNative[runtime.GOARCH]`` for this machine: ``amd64``, ``arm64``, ``x86``..."""
    goarch = _GOARCH.get(platform.machine(), platform.machine())
    return _GO_TO_NATIVE.get(goarch, goarch)


def _kernel_version() -> tuple[int, int]:
    release = os.uname().release
    parts = release.split("-", 1)[0].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise InvalidArgument(f"failed to parse kernel version {release!r}") from None


def _min_kernel(value: Any) -> tuple[int, int] | None:
    if value in (None, ""):
        return None
    parts = str(value).split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or parts == ["0", "0"]:
        raise InvalidArgument(f'invalid kernel version: "{value}", expected "<kernel>.<major>"')
    return int(parts[0]), int(parts[1])


def _names(call: Mapping[str, Any]) -> list[str]:
    name, names = call.get("name"), call.get("names")
    if name:
        if names:
            raise InvalidArgument(
                "both 'name' and 'names' are specified in the seccomp profile, use either 'name' or 'names'"
            )
        return [str(name)]
    return [str(n) for n in names or ()]


def _wanted(call: Mapping[str, Any], arch: str, bounding: Sequence[str], kernel: tuple[int, int]) -> bool:
    """moby's include/exclude test for one syscall group."""
    excludes = call.get("excludes") or {}
    if arch in (excludes.get("arches") or ()):
        return False
    if any(c in bounding for c in excludes.get("caps") or ()):
        return False
    minimum = _min_kernel(excludes.get("minKernel"))
    if minimum is not None and kernel >= minimum:
        return False
    includes = call.get("includes") or {}
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if any(c not in bounding for c in includes.get("caps") or ()):
        return False
    minimum = _min_kernel(includes.get("minKernel"))
    return minimum is None or kernel >= minimum


def to_oci(
    profile: Mapping[str, Any],
    bounding: Sequence[str],
    *,
    arch: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict[str, Any] | None:
    """A docker profile as the OCI ``linux.seccomp`` object for a container whose bounding set
    is ``bounding`` (None: the profile disables seccomp, as moby reads an empty one).

    ``arch`` (moby's native name, e.g. ``amd64``) and ``kernel`` default to this machine's.
    """
    if not isinstance(profile, Mapping):
        raise InvalidArgument("seccomp profile: expected a JSON object")
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidArgument(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, "
            "use either 'architectures' or 'archMap'"
        )
    arch = arch or native_arch()
    kernel = kernel or _kernel_version()
    out: dict[str, Any] = {
        k: copy.deepcopy(v) for k, v in profile.items() if k in _OCI_KEYS and v not in (None, "", [])
    }
    architectures = list(out.pop("architectures", []))
    seccomp_arch = _NATIVE_TO_SECCOMP.get(arch)
    for entry in profile.get("archMap") or ():
        if entry.get("architecture") == seccomp_arch:
            architectures += [entry["architecture"], *(entry.get("subArchitectures") or ())]
            break
    if architectures:
        out["architectures"] = architectures
    syscalls: list[dict[str, Any]] = []
    for call in profile.get("syscalls") or ():
        if not isinstance(call, Mapping):
            raise InvalidArgument(f"seccomp profile: a syscall entry must be an object, got {call!r}")
        names = _names(call)
        if not _wanted(call, arch, bounding, kernel):
            continue
        rule: dict[str, Any] = {"names": names, "action": call.get("action", "")}
        if call.get("errnoRet") is not None:
            rule["errnoRet"] = call["errnoRet"]
        if call.get("args"):
            rule["args"] = copy.deepcopy(call["args"])
        syscalls.append(rule)
    out["syscalls"] = syscalls
    return out


@functools.cache
def _default_text() -> str:
    return DEFAULT_PROFILE.read_text()


def default_profile() -> dict[str, Any]:
    """A fresh copy of Docker's default profile."""
    result: dict[str, Any] = json.loads(_default_text())
    return result


def load_profile(value: str) -> dict[str, Any]:
    """A profile given as JSON text (what dockerd receives) or as a path to a JSON file."""
    text, origin = value, "seccomp profile"
    if not value.lstrip().startswith("{"):
        origin = f"seccomp profile ({value})"
        try:
            text = Path(value).read_text()
        except OSError as exc:
            raise InvalidArgument(f"opening {origin} failed: {exc.strerror or exc}") from None
    try:
        profile = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"Decoding {origin} failed: {exc}") from None
    if not isinstance(profile, dict):
        raise InvalidArgument(f"Decoding {origin} failed: expected a JSON object")
    return profile


@model
class SecurityOptions:
    """docker's ``--security-opt`` list, parsed as dockerd's ``parseSecurityOpt`` does."""

    seccomp: str | None = None
    """None: the default profile; ``unconfined``; else a profile (JSON text or a path)."""
    no_new_privileges: bool | None = None
    apparmor: str | None = None
    labels: tuple[str, ...] = ()


def parse_security_opt(options: Iterable[str]) -> SecurityOptions:
    """Parse ``security_opt``; an unknown option is refused with dockerd's error text."""
    seccomp: str | None = None
    nnp: bool | None = None
    apparmor: str | None = None
    labels: list[str] = []
    for opt in options:
        if opt == "no-new-privileges":
            nnp = True
            continue
        if opt == "disable":
            labels.append("disable")
            continue
        if "=" in opt:
            key, _, value = opt.partition("=")
        elif ":" in opt:
            key, _, value = opt.partition(":")
        else:
            raise InvalidArgument(f'invalid --security-opt 1: "{opt}"')
        if key == "label":
            labels.append(value)
        elif key == "apparmor":
            apparmor = value
        elif key == "seccomp":
            seccomp = value
        elif key == "no-new-privileges" and value in _TRUE + _FALSE:
            nnp = value in _TRUE
        else:
            raise InvalidArgument(f'invalid --security-opt 2: "{opt}"')
    return SecurityOptions(seccomp, nnp, apparmor, tuple(labels))


def split_no_new_privileges(options: Iterable[str]) -> tuple[list[str], bool]:
    """``(the other options, no_new_privileges)``: the spec keeps the flag in its own field.

    Options are checked first (dockerd's errors); the last no-new-privileges entry wins.
    """
    listed = list(options)
    parsed = parse_security_opt(listed)
    rest = [o for o in listed if o.partition("=")[0].partition(":")[0] != "no-new-privileges"]
    return rest, bool(parsed.no_new_privileges)


def seccomp_for(
    options: SecurityOptions, bounding: Sequence[str], *, privileged: bool
) -> dict[str, Any] | None:
    """The ``linux.seccomp`` for a container, as dockerd's ``WithSeccomp`` chooses it:
    privileged or ``seccomp=unconfined`` run without a filter, else the given profile or
    Docker's default, resolved for the container's bounding capabilities."""
    if privileged or options.seccomp == UNCONFINED:
        return None
    if options.seccomp in (None, "", BUILTIN):
        result: dict[str, Any] = json.loads(_default_for(tuple(bounding)))
        return result
    return to_oci(load_profile(str(options.seccomp)), bounding)


@functools.lru_cache(maxsize=64)
def _default_for(bounding: tuple[str, ...]) -> str:
    """Docker's default profile for one bounding set, as JSON text (a create copies it)."""
    return json.dumps(to_oci(default_profile(), bounding))
