"""The Dockerfile language, as BuildKit defines it: parser, shell lexer, ``.dockerignore``, globs.

Pure functions over text, held to BuildKit's own parser and shell-lexer corpora
(tests/dockerfile/corpus). The builder in ``engine/`` executes what ``parse`` returns.
"""

from __future__ import annotations

from .errors import DockerfileSyntaxError
from .ignore import DockerIgnore
from .instructions import (
    Add,
    Arg,
    ArgDefinition,
    Cmd,
    Copy,
    Dockerfile,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    InlineFile,
    Instruction,
    KeyValue,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    SourceContent,
    Stage,
    StopSignal,
    User,
    Volume,
    Workdir,
    parse,
)
from .lexer import ShellLex
from .parser import Heredoc

__all__ = [
    "Add",
    "Arg",
    "ArgDefinition",
    "Cmd",
    "Copy",
    "DockerIgnore",
    "Dockerfile",
    "DockerfileSyntaxError",
    "Entrypoint",
    "Env",
    "Expose",
    "From",
    "Healthcheck",
    "Heredoc",
    "InlineFile",
    "Instruction",
    "KeyValue",
    "Label",
    "Maintainer",
    "Onbuild",
    "Run",
    "Shell",
    "ShellLex",
    "SourceContent",
    "Stage",
    "StopSignal",
    "User",
    "Volume",
    "Workdir",
    "parse",
]
