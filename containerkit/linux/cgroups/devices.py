"""Device access rules: parsed once from OCI ``linux.resources.devices``, applied by either version.

v1 writes them as ``devices.allow`` / ``devices.deny`` lines; v2 has no device controller, so
they become a ``BPF_PROG_TYPE_CGROUP_DEVICE`` program (the same shape runc and crun generate).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from containerkit._model import model
from containerkit.errors import InvalidArgument

__all__ = ["DeviceRule", "build_device_program", "parse_rules"]

DeviceType = Literal["a", "b", "c"]

_TYPES: dict[object, DeviceType] = {"a": "a", "b": "b", "c": "c"}
_ACCESS_BITS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE
_ALL_ACCESS = 7
_TYPE_BITS = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, _CHAR
_MAX_NUMBER = (1 << 31) - 1  # a BPF immediate is a signed 32-bit value


@model(kw_only=True)
class DeviceRule:
    """One rule: ``allow`` or deny ``access`` (a subset of ``rwm``) to ``type major:minor``.

    ``None`` for major or minor is the wildcard ``*``; type ``a`` matches both kinds.
    """

    allow: bool
    type: DeviceType = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    @property
    def is_wildcard(self) -> bool:
        """``a *:* rwm``: resets the whole list to deny-all (or allow-all)."""
        return self.type == "a" and self.major is None and self.minor is None and self.access_bits == 7

    @property
    def access_bits(self) -> int:
        return sum(_ACCESS_BITS[c] for c in set(self.access))

    def v1_line(self) -> str:
        """The text for ``devices.allow`` / ``devices.deny`` (``c 1:3 rwm``, ``a``)."""
        if self.is_wildcard:
            return "a"
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"

    @classmethod
    def from_oci(cls, rule: Mapping[str, Any], index: int = 0) -> DeviceRule:
        """An OCI ``LinuxDeviceCgroup`` dict; a bad field is :class:`InvalidArgument` naming it."""
        where = f"linux.resources.devices[{index}]"
        allow = rule.get("allow")
        if not isinstance(allow, bool):
            raise InvalidArgument(f"{where}.allow must be true or false, got {allow!r}")
        raw_type = rule.get("type") or "a"
        kind = _TYPES.get(raw_type) if isinstance(raw_type, str) else None
        if kind is None:
            raise InvalidArgument(f"{where}.type must be a, b or c, got {rule.get('type')!r}")
        access = rule.get("access") or "rwm"
        if not isinstance(access, str) or not set(access) <= set("rwm"):
            raise InvalidArgument(f"{where}.access must be letters of 'rwm', got {access!r}")
        return cls(
            allow=allow,
            type=kind,
            major=_number(rule.get("major"), f"{where}.major"),
            minor=_number(rule.get("minor"), f"{where}.minor"),
            access="".join(c for c in "rwm" if c in access),
        )


def _number(value: object, where: str) -> int | None:
    if value is None or value == -1:  # OCI writes -1 (or leaves it out) for '*'
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_NUMBER:
        raise InvalidArgument(f"{where} must be a device number 0..{_MAX_NUMBER} or -1, got {value!r}")
    return value


def parse_rules(rules: Iterable[Mapping[str, Any] | DeviceRule]) -> list[DeviceRule]:
    """OCI dicts (or rules already parsed) as :class:`DeviceRule` objects, in order."""
    return [r if isinstance(r, DeviceRule) else DeviceRule.from_oci(r, i) for i, r in enumerate(rules)]


def effective_rules(rules: Sequence[DeviceRule]) -> tuple[bool, list[DeviceRule]]:
    """(default allow?, the rules after the last wildcard): what the kernel's v1 list would hold.

    With no wildcard at all the default is deny, as a fresh runc/crun program has it.
    """
    default_allow = False
    start = 0
    for index, rule in enumerate(rules):
        if rule.is_wildcard:
            default_allow = rule.allow
            start = index + 1
    return default_allow, list(rules[start:])


# -- the BPF program --------------------------------------------------------------------------

# opcodes (linux/bpf_common.h, linux/bpf.h)
_LDX_MEM_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W
_ALU32_AND_K = 0x54
_ALU32_RSH_K = 0x74
_ALU32_MOV_K = 0xB4
_ALU32_MOV_X = 0xBC
_JMP_JNE_K = 0x55
_JMP_JNE_X = 0x5D
_JMP_EXIT = 0x95
_R0, _R1, _R2, _R3, _R4, _R5 = range(6)


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """``struct bpf_insn`` (little-endian: dst_reg in the low nibble)."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _block(rule: DeviceRule) -> list[tuple[int, int, int, int, int | None]]:
    """One rule's checks as (code, dst, src, imm, jump-to-next?) rows; a match returns its verdict.

    ``None`` in the last column marks a plain instruction; ``0`` a "skip to the next block" jump.
    """
    rows: list[tuple[int, int, int, int, int | None]] = []
    if rule.type != "a":
        rows.append((_JMP_JNE_K, _R2, 0, _TYPE_BITS[rule.type], 0))
    if rule.access_bits != _ALL_ACCESS:
        # the requested access must be a subset of the rule's: (R3 & bits) == R3
        rows.append((_ALU32_MOV_X, _R1, _R3, 0, None))
        rows.append((_ALU32_AND_K, _R1, 0, rule.access_bits, None))
        rows.append((_JMP_JNE_X, _R1, _R3, 0, 0))
    if rule.major is not None:
        rows.append((_JMP_JNE_K, _R4, 0, rule.major, 0))
    if rule.minor is not None:
        rows.append((_JMP_JNE_K, _R5, 0, rule.minor, 0))
    rows.append((_ALU32_MOV_K, _R0, 0, int(rule.allow), None))
    rows.append((_JMP_EXIT, 0, 0, 0, None))
    return rows


def build_device_program(rules: Sequence[DeviceRule]) -> bytes:
    """The instructions of a ``BPF_PROG_TYPE_CGROUP_DEVICE`` program enforcing ``rules``.

    As in the v1 list, the last matching rule decides (blocks are emitted newest first and the
    first match returns); a wildcard resets everything before it; nothing matching means the
    default. The context is ``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor}``
    with the device type in the low and the access in the high 16 bits of ``access_type``.
    """
    default_allow, kept = effective_rules(rules)
    program = [
        _insn(_LDX_MEM_W, _R2, _R1, 0),
        _insn(_ALU32_AND_K, _R2, imm=0xFFFF),
        _insn(_LDX_MEM_W, _R3, _R1, 0),
        _insn(_ALU32_RSH_K, _R3, imm=16),
        _insn(_LDX_MEM_W, _R4, _R1, 4),
        _insn(_LDX_MEM_W, _R5, _R1, 8),
    ]
    for index in reversed(range(len(kept))):
        rule = kept[index]
        if rule.allow == default_allow and all(other.allow == default_allow for other in kept[:index]):
            continue  # it overrides no earlier rule, so it says only what the default says
        rows = _block(rule)
        for position, (code, dst, src, imm, jump) in enumerate(rows):
            off = 0 if jump is None else len(rows) - position - 1  # to the first row after the block
            program.append(_insn(code, dst, src, off, imm))
    program.append(_insn(_ALU32_MOV_K, _R0, imm=int(default_allow)))
    program.append(_insn(_JMP_EXIT))
    return b"".join(program)
