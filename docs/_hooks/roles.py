"""mkdocs hook: docstrings cite objects with reST roles (``:class:`~containerkit.Engine```), which
Markdown renders literally; show them as the plain code name instead."""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:class|meth|func|attr|mod|data|exc|obj):<code>~?(?:[\w.]*\.)?([\w]+(?:\(\))?)</code>")


def on_page_content(html: str, **_kwargs: Any) -> str:
    return _ROLE.sub(r"<code>\1</code>", html)
