"""What a live handle on a stored object has in common."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

import attrs

__all__ = ["RecordHandle"]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


R = TypeVar("R", bound=_Named)
S = TypeVar("S")


@attrs.define(eq=False)
class RecordHandle(Generic[R, S]):
    """Equal by id (two handles on one object are equal); ``_record`` is the stored row and
    ``_service`` the service that acts on it (never the whole Engine)."""

    id: str
    _service: S = attrs.field(repr=False)
    _record: R = attrs.field(repr=False)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def short_id(self) -> str:
        return self.id[:12]
