"""Container names: docker's rule for what is allowed (``spec.check_container_name``, the one
validator), and docker-style random names."""

from __future__ import annotations

import random

from containerkit.spec import check_container_name

__all__ = ["check", "random_name"]

_LEFT = (
    "admiring",
    "bold",
    "brave",
    "busy",
    "calm",
    "clever",
    "cool",
    "dazzling",
    "eager",
    "elastic",
    "epic",
    "fervent",
    "focused",
    "gallant",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "laughing",
    "loving",
    "lucid",
    "modest",
    "nifty",
    "nostalgic",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "sweet",
    "tender",
    "trusting",
    "upbeat",
    "vibrant",
    "wizardly",
    "zen",
)
_RIGHT = (
    "agnesi",
    "babbage",
    "bohr",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "faraday",
    "fermat",
    "franklin",
    "galileo",
    "gauss",
    "hopper",
    "hypatia",
    "kepler",
    "knuth",
    "lamarr",
    "lovelace",
    "maxwell",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "planck",
    "ritchie",
    "shannon",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "volta",
    "wozniak",
    "yalow",
)


def check(name: str) -> str:
    """The name without docker's optional leading ``/``; ``InvalidArgument`` when not allowed."""
    return check_container_name(name)


def random_name() -> str:
    return f"{random.choice(_LEFT)}_{random.choice(_RIGHT)}"
