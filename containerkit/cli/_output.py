"""Output like docker's: aligned tables, ``--format json`` and ``{{.Field}}`` templates, human units."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "ago",
    "echo_json",
    "human_duration",
    "human_size",
    "iec_size",
    "print_rows",
    "render_template",
    "table",
    "truncate",
]

_FIELD = re.compile(r"\{\{\s*(json\s+)?\.([A-Za-z0-9_.]*)\s*\}\}")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell and three spaces apart, like docker's tabwriter."""
    body = [list(headers), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in body) for i in range(len(headers))]
    lines = []
    for row in body:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)] + [row[-1]]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def _lookup(data: Any, path: str) -> Any:
    value = data
    for part in [p for p in path.split(".") if p]:
        value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
    return value


def _as_text(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):  # Go's fmt: [a b]
        return "[" + " ".join(_as_text(v) for v in value) + "]"
    if isinstance(value, Mapping):  # Go's fmt: map[k:v]
        return "map[" + " ".join(f"{k}:{_as_text(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def render_template(template: str, data: Mapping[str, Any]) -> str:
    """The subset of Go templates docker users type: ``{{.Field.Sub}}`` and ``{{json .Field}}``."""
    text = template.replace("\\t", "\t").replace("\\n", "\n")

    def substitute(match: re.Match[str]) -> str:
        value = _lookup(data, match.group(2))
        return json.dumps(value) if match.group(1) else _as_text(value)

    return _FIELD.sub(substitute, text)


def print_rows(
    format_: str | None,
    headers: Sequence[str],
    keys: Sequence[str],
    records: Sequence[Mapping[str, Any]],
) -> None:
    """A table (default), one JSON object per line (``json``) or a template per record."""
    if format_ is None or format_ == "table":
        print(table(headers, ([str(r[k]) for k in keys] for r in records)))
    elif format_ == "json":
        for record in records:
            print(json.dumps(record, separators=(",", ":")))
    elif format_.startswith("table "):
        template = format_[len("table ") :]
        header = render_template(template, dict(zip(keys, headers, strict=True)))
        print("\n".join([header, *(render_template(template, r) for r in records)]))
    else:
        for record in records:
            print(render_template(format_, record))


def echo_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=4) + "\n")


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _to_datetime(value: dt.datetime | str | float | None) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    text = value.rstrip("Z")
    main, _, frac = text.partition(".")
    parsed = dt.datetime.fromisoformat(main + (f".{frac[:6]}" if frac else ""))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def human_duration(seconds: float) -> str:
    """docker's ``HumanDuration`` (``3 hours``), from :mod:`containerkit.dockerapi.times` when
    first used: that package loads every Docker shape module, which a ``run`` never needs."""
    from containerkit.dockerapi.times import human_duration as human

    return human(seconds)


def since(value: dt.datetime | str | float | None) -> float:
    """Seconds from ``value`` (a datetime, RFC 3339 text or unix time) until now."""
    moment = _to_datetime(value)
    if moment is None:
        return 0.0
    return max(0.0, (dt.datetime.now(dt.UTC) - moment).total_seconds())


def ago(value: dt.datetime | str | float | None) -> str:
    return f"{human_duration(since(value))} ago" if value is not None else ""


def rfc3339(value: dt.datetime | str | float | None) -> str:
    moment = _to_datetime(value)
    if moment is None:
        return "0001-01-01T00:00:00Z"
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def human_size(size: float) -> str:
    """docker's ``units.HumanSize``: decimal units, three significant digits ("4.26MB")."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    index = 0
    while size >= 1000 and index < len(units) - 1:
        size /= 1000
        index += 1
    return f"{size:.3g}{units[index]}"


def iec_size(size: float) -> str:
    """docker's ``units.BytesSize`` for ``stats``: binary units ("1.5MiB")."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    index = 0
    while size >= 1024 and index < len(units) - 1:
        size /= 1024
        index += 1
    return f"{size:.4g}{units[index]}"
