"""Platforms (``os/arch/variant``): parsing, normalisation and the order of fallbacks.

The rules are containerd's ``platforms`` package (which dockerd uses): architecture names from
``uname`` map to GOARCH words (``x86_64`` -> ``amd64``, ``aarch64`` -> ``arm64``, ``armhf`` ->
``arm/v7``), ``arm64`` with variant ``v8`` is plain ``arm64``, and a platform accepts the older
ones that run on it: ``arm/v7`` runs ``v6`` and ``v5``, ``arm64`` runs ``arm/v8``..``v5``,
``amd64/v3`` runs ``v2``, ``v1`` and ``386``. Entries earlier in :meth:`Platform.fallbacks` win.
"""

from __future__ import annotations

import platform as _platform
import re

import attrs

from containerkit.errors import InvalidArgument

__all__ = ["Platform", "host_platform", "parse_platform"]

_KNOWN_OS = frozenset(
    {
        "aix",
        "android",
        "darwin",
        "dragonfly",
        "freebsd",
        "illumos",
        "ios",
        "js",
        "linux",
        "netbsd",
        "openbsd",
        "plan9",
        "solaris",
        "wasip1",
        "windows",
    }
)
_KNOWN_ARCH = frozenset(
    {
        "386",
        "amd64",
        "amd64p32",
        "arm",
        "armbe",
        "arm64",
        "arm64be",
        "loong64",
        "mips",
        "mipsle",
        "mips64",
        "mips64le",
        "mips64p32",
        "mips64p32le",
        "ppc",
        "ppc64",
        "ppc64le",
        "riscv",
        "riscv64",
        "s390",
        "s390x",
        "sparc",
        "sparc64",
        "wasm",
    }
)
"""containerd's ``isKnownArch``: a lone word that is neither an OS nor one of these is refused."""
_PART_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


@attrs.frozen
class Platform:
    """A normalised platform; ``variant`` is "" when the architecture has none (or its default)."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        """docker's spelling in messages: ``linux/amd64``, ``linux/arm64/v8``, ``linux/arm/v7``."""
        variant = self.variant or ("v8" if self.architecture == "arm64" else "")
        return "/".join(x for x in (self.os, self.architecture, variant) if x)

    def as_dict(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    def fallbacks(self) -> tuple[Platform, ...]:
        """The platforms this one runs, best first (containerd's ``platformVector``)."""
        vector = [self]
        arch, variant = self.architecture, self.variant
        if arch == "amd64":
            level = _level(variant) or 1
            vector += [Platform(self.os, "amd64", f"v{n}" if n > 1 else "") for n in range(level - 1, 0, -1)]
            vector.append(Platform(self.os, "386"))
        elif arch == "arm":
            arm_level = _level(variant)
            if arm_level is not None:
                vector += [Platform(self.os, "arm", f"v{n}") for n in range(arm_level - 1, 4, -1)]
        elif arch == "arm64":
            arm64_level = _level(variant) or 8
            vector += [
                Platform(self.os, "arm64", f"v{n}" if n > 8 else "") for n in range(arm64_level - 1, 7, -1)
            ]
            vector += Platform(self.os, "arm", "v8").fallbacks()
        seen: list[Platform] = []
        for item in vector:
            if item not in seen:
                seen.append(item)
        return tuple(seen)

    def rank(self, candidate: Platform) -> int | None:
        """Where ``candidate`` sits in :meth:`fallbacks` (0 is exact), None when it cannot run here."""
        try:
            return self.fallbacks().index(candidate)
        except ValueError:
            return None


def _level(variant: str) -> int | None:
    text = variant[1:] if variant.startswith("v") else variant
    return int(text) if text.isdigit() else None


def normalize(os_name: str, architecture: str, variant: str = "") -> Platform:
    """containerd's ``Normalize``: GOOS/GOARCH words, default variants made explicit or dropped."""
    os_name = os_name.lower()
    if os_name == "macos":
        os_name = "darwin"
    arch, variant = architecture.lower(), variant.lower()
    if arch == "i386":
        arch, variant = "386", ""
    elif arch in ("x86_64", "x86-64", "amd64"):
        arch = "amd64"
        if variant == "v1":
            variant = ""
    elif arch in ("aarch64", "arm64"):
        arch = "arm64"
        major, dot, minor = variant.partition(".")
        major = major.removeprefix("v")
        if minor == "0":
            dot, minor = "", ""
        variant = "" if major in ("", "8") and not dot else f"v{major}{dot}{minor}"
    elif arch == "armhf":
        arch, variant = "arm", "v7"
    elif arch == "armel":
        arch, variant = "arm", "v6"
    elif arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
    return Platform(os_name, arch, variant)


def host_platform() -> Platform:
    """This machine's platform (arm hosts report their variant from ``uname -m``)."""
    machine = _platform.machine().lower()
    variant = ""
    if machine.startswith("armv") and machine[4:5].isdigit():
        machine, variant = "arm", "v" + machine[4]
    return normalize("linux", machine, variant)


def parse_platform(text: str) -> Platform:
    """``os[/arch[/variant]]`` as the Docker API takes it; an OS alone gets this host's
    architecture, an architecture alone gets ``linux``. A bad value is InvalidArgument (400)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument(f"invalid platform {text!r}: expected os[/arch[/variant]]")
    parts = text.strip().split("/")
    if len(parts) > 3 or not all(_PART_RE.match(p) for p in parts):
        raise InvalidArgument(f"invalid platform {text!r}: expected os[/arch[/variant]]")
    host = host_platform()
    if len(parts) == 1:
        if parts[0].lower() in _KNOWN_OS:
            return normalize(parts[0], host.architecture, host.variant)
        alone = normalize("linux", parts[0])
        if alone.architecture not in _KNOWN_ARCH:
            raise InvalidArgument(f"invalid platform {text!r}: unknown operating system or architecture")
        return alone
    if parts[0].lower() not in _KNOWN_OS and parts[0].lower() != "macos":
        raise InvalidArgument(f"invalid platform {text!r}: unknown operating system {parts[0]!r}")
    return normalize(parts[0], parts[1], parts[2] if len(parts) == 3 else "")
