"""What a live handle on a stored object (a container, a network) has in common."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import attrs

if TYPE_CHECKING:
    from containerkit.engine.engine import Engine

__all__ = ["RecordHandle"]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


R = TypeVar("R", bound=_Named)


@attrs.define(eq=False)
class RecordHandle(Generic[R]):
    """Equal by id (two handles on one object are equal); ``_record`` is the stored row."""

    id: str
    _engine: Engine = attrs.field(repr=False)
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
