"""Image references, normalised the way docker does it.

``busybox``, ``library/busybox:latest`` and ``docker.io/library/busybox:latest`` name the same
image: every layer below the API stores the canonical form and shows the familiar one, so a tag
written one way is found when asked for the other way.

Grammar (distribution/reference): ``[domain[:port]/]path[:tag][@digest]`` where the first path
component is a domain only if it contains ``.`` or ``:`` or is ``localhost``; a name on
``docker.io`` with one component lives under ``library/``. This module accepts only ``sha256``
digests, the only algorithm the content store keeps.
"""

from __future__ import annotations

import re

from containerkit._model import model
from containerkit.errors import InvalidReference

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "ImageRef",
    "is_digest",
    "parse_reference",
    "parse_repository",
]

DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"
_OFFICIAL_PREFIX = "library/"
_LEGACY_DOMAINS = ("index.docker.io", "registry-1.docker.io")

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_PATH_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_NAME = 255


def is_digest(text: str) -> bool:
    """``sha256:`` followed by 64 lowercase hex digits."""
    return bool(_DIGEST_RE.match(text))


@model
class ImageRef:
    """A normalised reference. ``tag`` is ``None`` only when a digest pins the image."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The canonical repository: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The repository as docker prints it: ``busybox``, ``example/app``, ``localhost:5000/x``."""
        first = self.path.split("/", 1)[0]
        if self.domain != DEFAULT_DOMAIN or "." in first or first == "localhost":
            return self.name  # a short form would read back as another registry
        if self.path.startswith(_OFFICIAL_PREFIX) and self.path.count("/") == 1:
            return self.path[len(_OFFICIAL_PREFIX) :]
        return self.path

    @property
    def canonical(self) -> str:
        """``docker.io/library/busybox:latest`` (and ``@sha256:...`` when pinned)."""
        return self._render(self.name)

    @property
    def familiar(self) -> str:
        """``busybox:latest``: what ``docker images`` shows."""
        return self._render(self.familiar_name)

    def with_tag(self, tag: str) -> ImageRef:
        if not _TAG_RE.match(tag):
            raise InvalidReference(f"invalid tag {tag!r} for {self.familiar_name!r}")
        return ImageRef(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> ImageRef:
        if not is_digest(digest):
            raise InvalidReference(f"invalid digest {digest!r} for {self.familiar_name!r}")
        return ImageRef(self.domain, self.path, None, digest)

    def _render(self, name: str) -> str:
        text = name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    def __str__(self) -> str:
        return self.canonical


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain in _LEGACY_DOMAINS:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = _OFFICIAL_PREFIX + path
    return domain, path


def _parse(text: str, *, default_tag: bool) -> ImageRef:
    if not isinstance(text, str) or not text:
        raise InvalidReference(f"invalid reference format: empty reference {text!r}")
    remainder, at, digest = text.partition("@")
    if at and not is_digest(digest):
        raise InvalidReference(f"invalid reference format: bad digest in {text!r} (expected sha256:<64 hex>)")
    name, tag = remainder, None
    colon = remainder.rfind(":")
    if colon > remainder.rfind("/"):
        name, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidReference(f"invalid reference format: bad tag {tag!r} in {text!r}")
    if not name:
        raise InvalidReference(f"invalid reference format: no repository name in {text!r}")
    if _HEX64_RE.match(name):
        raise InvalidReference(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    if len(name) > _MAX_NAME:
        raise InvalidReference(f"invalid reference format: repository name longer than {_MAX_NAME}: {text!r}")
    domain, path = _split_domain(name)
    if not _DOMAIN_RE.match(domain):
        raise InvalidReference(f"invalid reference format: bad registry domain {domain!r} in {text!r}")
    if not _PATH_RE.match(path):
        if path.lower() != path:
            raise InvalidReference(f"invalid reference format: repository name must be lowercase: {text!r}")
        raise InvalidReference(f"invalid reference format: bad repository name in {text!r}")
    if tag is None and not at and default_tag:
        tag = DEFAULT_TAG
    return ImageRef(domain, path, tag, digest if at else None)


def parse_reference(text: str) -> ImageRef:
    """Parse and normalise ``text``; a bare name gets the ``latest`` tag. Raises InvalidReference."""
    return _parse(text, default_tag=True)


def parse_repository(text: str) -> ImageRef:
    """A repository name alone (no tag, no digest), e.g. the name given to tag-only OCI annotations."""
    ref = _parse(text, default_tag=False)
    if ref.tag is not None or ref.digest is not None:
        raise InvalidReference(f"expected a repository name without tag or digest, got {text!r}")
    return ref
