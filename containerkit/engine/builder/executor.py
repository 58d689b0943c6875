"""The classic builder's dispatch: a Dockerfile's stages and steps, each step an image.

As moby's ``builder/dockerfile`` does: global ARGs before the first FROM (usable in FROM
only), each stage from scratch, an earlier stage or an image (pulled when missing, or always
with ``pull``), its ONBUILD triggers first, then its instructions in order. Every step that
changes something is an image whose history line is docker's (``/bin/sh -c #(nop)  ENV a=b``,
``|1 a=b /bin/sh -c make``, ``/bin/sh -c #(nop) COPY file:<hash> in /app ``), and is looked
up in the cache first by its key (parent image, that history line, the resulting config):

* RUN runs as a container of the engine (its isolation, seccomp, cgroups; the build's
  network and extra hosts), committed with ``Container.commit``;
* COPY, ADD and a WORKDIR that makes a directory write their layer straight from the context
  (``layers.py``); the other instructions change only the config (``engine.commit.derive``).

Intermediate containers carry the label ``containerkit.build.owner`` with the building
process, so ``Engine.recover()`` removes those a killed build left (``recovery.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from containerkit.dockerfile import instructions as ins
from containerkit.dockerfile.errors import DockerfileSyntaxError
from containerkit.dockerfile.lexer import ShellLex
from containerkit.engine import commit as _commit
from containerkit.engine._recovery import owner_token
from containerkit.engine.builder import BUILD_OWNER_LABEL
from containerkit.engine.builder import cache as _cache
from containerkit.engine.builder.context import BuildContext, combined_hash
from containerkit.engine.builder.copying import CopyPlan, add_parents, is_url
from containerkit.engine.builder.layers import LayerTar, add_layer
from containerkit.errors import BuildError, ContainerkitError, InvalidArgument, NotFound
from containerkit.images.layerview import MergedView
from containerkit.linux.users import resolve_user
from containerkit.spec import BuildEvent, ContainerSpec, Healthcheck, Image, ImageConfig

if TYPE_CHECKING:
    from containerkit.engine.containers import ContainerCollection
    from containerkit.engine.images import ImageCollection
    from containerkit.images.registry.auth import RegistryAuth
    from containerkit.storage.build_cache import BuildCacheStore

__all__ = ["BUILD_OWNER_LABEL", "BuildOptions", "Executor"]


_DEFAULT_SHELL = ("/bin/sh", "-c")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_BUILTIN_ARGS = frozenset(
    {
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "FTP_PROXY",
        "ftp_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    }
)
"""Build args that need no ARG and stay out of history unless a Dockerfile names them."""

Progress = Callable[[BuildEvent], None]


@attrs.frozen(kw_only=True)
class BuildOptions:
    """What ``images.build`` was asked for, checked."""

    dockerfile: str = "Dockerfile"
    dockerfile_text: str | None = None
    tags: tuple[str, ...] = ()
    buildargs: Mapping[str, str | None] = attrs.field(factory=dict)
    target: str | None = None
    labels: Mapping[str, str] = attrs.field(factory=dict)
    nocache: bool = False
    cache_from: tuple[str, ...] = ()
    pull: bool = False
    network: str = "bridge"
    extra_hosts: Mapping[str, str] = attrs.field(factory=dict)
    platform: str | None = None
    rm: bool = True
    forcerm: bool = False
    auth: Mapping[str, RegistryAuth] = attrs.field(factory=dict)
    cancel: threading.Event | None = None
    """Set to stop the build: before the next step, and a running RUN's container is removed."""


@attrs.define
class _Stage:
    """One stage's state while it is built (moby's ``dispatchState``)."""

    image_id: str | None
    config: ImageConfig
    args: dict[str, str | None] = attrs.field(factory=dict)
    name: str | None = None
    cmd_set: bool = False


class Executor:
    """Runs one build: ``run()`` returns the image of the last stage built."""

    def __init__(
        self,
        images: ImageCollection,
        containers: ContainerCollection,
        cache: BuildCacheStore,
        context: BuildContext,
        options: BuildOptions,
        progress: Progress | None,
    ) -> None:
        self.images = images
        self.containers = containers
        self.cache = cache
        self.context = context
        self.options = options
        self._progress = progress
        self.meta_args: dict[str, str | None] = {}
        self.referenced: set[str] = set()
        self.stage_images: dict[str, str | None] = {}
        self._views: dict[str, MergedView] = {}
        self._cache_from = [images.get(ref).id for ref in options.cache_from if _exists(images, ref)]
        self._step = 0
        self._total = 0
        self._tmp_files: list[str] = []
        self._shell_lex = ShellLex()

    # -- progress and cancellation -------------------------------------------------------------

    def _cancelled(self) -> bool:
        return self.options.cancel is not None and self.options.cancel.is_set()

    def _check_cancelled(self) -> None:
        if self._cancelled():
            raise BuildError("the build was cancelled")

    def emit(self, kind: Any, **fields: Any) -> None:
        if self._progress is not None:
            self._progress(BuildEvent(kind=kind, **fields))

    def _print_step(self, original: str) -> None:
        self._step += 1
        self.emit("step", text=original, step=self._step, total=self._total)

    # -- the build ----------------------------------------------------------------------------

    def run(self) -> Image:
        try:
            return self._run_build()
        finally:
            cleanup_files(self._tmp_files)

    def _run_build(self) -> Image:
        text = self.options.dockerfile_text
        if text is None:
            text = _read_dockerfile(self.context.root, self.options.dockerfile)
        try:
            dockerfile = ins.parse(text)
        except DockerfileSyntaxError as exc:
            raise BuildError(str(exc)) from None
        self._shell_lex = ShellLex(dockerfile.escape)
        stages = list(dockerfile.stages)
        if not stages:
            raise BuildError("file with no instructions")
        if self.options.target:
            stages = stages[: dockerfile.stage(self.options.target) + 1]
        label_step = self._label_step(dockerfile.escape)
        if label_step is not None:
            last = stages[-1]
            stages[-1] = attrs.evolve(last, instructions=(*last.instructions, label_step))
        self._total = len(dockerfile.global_args) + sum(1 + len(s.instructions) for s in stages)
        for arg in dockerfile.global_args:
            self._print_step(arg.original)
            for definition in arg.args:
                value = definition.value
                if value is not None:
                    value = self._expand(value, self._meta_env())
                user = self.options.buildargs.get(definition.key)
                self.meta_args[definition.key] = user if definition.key in self.options.buildargs else value
        state: _Stage | None = None
        for index, stage in enumerate(stages):
            state = self._from(stage)
            for instruction in stage.instructions:
                self._check_cancelled()
                self._print_step(instruction.original)
                self.dispatch(state, instruction)
                self.emit("image", id=state.image_id or "")
            if state.image_id is not None:
                self.emit("stage", id=state.image_id)
            self.stage_images[str(index)] = state.image_id
            if stage.name:
                self.stage_images[stage.name.lower()] = state.image_id
        unused = sorted(
            k for k in self.options.buildargs if k not in self.referenced and k not in _BUILTIN_ARGS
        )
        if unused:
            self.emit("warning", text=f"One or more build-args [{' '.join(unused)}] were not consumed")
        if state is None or state.image_id is None:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        return self.images.get(state.image_id)

    def _label_step(self, escape: str) -> ins.Instruction | None:
        """docker's ``--label``s: one LABEL step at the end of the target stage."""
        if not self.options.labels:
            return None
        # dockerd's line: "k"='v' (a value with a quote of its own goes double-quoted)
        text = "LABEL " + " ".join(
            f"{json.dumps(k)}=" + (f"'{v}'" if "'" not in v else json.dumps(v))
            for k, v in sorted(self.options.labels.items())
        )
        prefix = "" if escape == "\\" else f"# escape={escape}\n"
        parsed = ins.parse(prefix + "FROM scratch\n" + text)
        return parsed.stages[0].instructions[0]

    # -- environment --------------------------------------------------------------------------

    def _meta_env(self) -> dict[str, str]:
        return {k: v for k, v in self.meta_args.items() if v is not None}

    def _arg_value(self, state: _Stage, key: str) -> str | None:
        """moby ``getBuildArg``: the user's value, else the ARG default, else the global value."""
        default = state.args.get(key)
        if key in self.options.buildargs and self.options.buildargs[key] is not None:
            return self.options.buildargs[key]
        if default is None:
            return self.meta_args.get(key)
        return default

    def _allowed_args(self, state: _Stage) -> dict[str, str]:
        out: dict[str, str] = {}
        for key in [*state.args, *sorted(_BUILTIN_ARGS & set(self.options.buildargs))]:
            value = self._arg_value(state, key)
            if value is not None:
                out[key] = value
        return out

    def _env(self, state: _Stage) -> dict[str, str]:
        """What a step's variables expand with: the allowed args, the config's ENV over them."""
        env = self._allowed_args(state)
        for item in state.config.env:
            key, _, value = item.partition("=")
            env[key] = value
        return env

    def _build_env(self, state: _Stage) -> list[tuple[str, str]]:
        """moby ``FilterAllowed``: the allowed args no ENV of the config sets."""
        env_keys = {item.partition("=")[0] for item in state.config.env}
        return [(k, v) for k, v in self._allowed_args(state).items() if k not in env_keys]

    def _expand(self, word: str, env: Mapping[str, str]) -> str:
        try:
            return self._shell_lex.expand(word, env)
        except InvalidArgument as exc:
            raise BuildError(str(exc)) from None

    # -- FROM ---------------------------------------------------------------------------------

    def _from(self, stage: ins.Stage) -> _Stage:
        self._print_step(stage.from_instruction.original)
        base = self._expand(stage.base, self._meta_env())
        if not base:
            raise BuildError(f"base name ({stage.base}) should not be blank")
        image_id: str | None
        if base.lower() == "scratch":
            image_id = None
        elif base.lower() in self.stage_images:
            image_id = self.stage_images[base.lower()]
        else:
            image_id = self._base_image(base, stage.platform)
        config = self.images.config(image_id) if image_id is not None else ImageConfig()
        if not any(item.startswith("PATH=") for item in config.env):
            # moby's beginStage: a stage whose image sets no PATH gets the default one
            config = attrs.evolve(config, env=(*config.env, f"PATH={_DEFAULT_PATH}"))
        state = _Stage(image_id, config, name=stage.name)
        self.emit("image", id=image_id or "")
        if config.on_build:
            triggers = list(config.on_build)
            self.emit(
                "output",
                text=f"# Executing {len(triggers)} build trigger{'s' if len(triggers) != 1 else ''}\n",
            )
            state.config = attrs.evolve(state.config, on_build=())
            for trigger in triggers:
                try:
                    instruction = ins.Onbuild(
                        line=0, end_line=0, original=trigger, expression=trigger
                    ).trigger
                except (DockerfileSyntaxError, IndexError) as exc:
                    raise BuildError(f"failed to parse ONBUILD trigger {trigger!r}: {exc}") from None
                self.dispatch(state, instruction)
        return state

    def _base_image(self, base: str, platform: str | None) -> str:
        if not self.options.pull:
            with contextlib.suppress(NotFound):
                return self.images.get(base).id
        from containerkit.images.reference import parse_reference

        ref = parse_reference(base)
        auth = self.options.auth.get(ref.domain) if self.options.auth else None
        platform = self._expand(platform, self._meta_env()) if platform else self.options.platform
        try:
            return self.images.pull(ref.canonical, platform=platform or None, auth=auth).id
        except NotFound:
            raise NotFound(
                f"pull access denied for {ref.familiar_name}, repository does not exist or may "
                "require 'docker login'"
            ) from None

    # -- the instructions ---------------------------------------------------------------------

    def dispatch(self, state: _Stage, instruction: ins.Instruction) -> None:
        handler = getattr(self, "_do_" + instruction.keyword.lower(), None)
        if handler is None:
            raise BuildError(f"unknown instruction: {instruction.keyword}")
        try:
            handler(state, instruction)
        except DockerfileSyntaxError as exc:
            raise BuildError(str(exc)) from None

    def _shell(self, state: _Stage) -> tuple[str, ...]:
        return state.config.shell or _DEFAULT_SHELL

    def _meta_step(self, state: _Stage, config: ImageConfig, comment: str) -> None:
        # the line names the shell of the config the step leaves (SHELL's own line its new one)
        created_by = " ".join([*(config.shell or _DEFAULT_SHELL), "#(nop) ", comment])

        def make() -> str:
            return _commit.derive(self.images, state.image_id, config, created_by=created_by).id

        self._cached(state, created_by, config, make)

    def _cached(self, state: _Stage, created_by: str, config: ImageConfig, make: Callable[[], str]) -> None:
        key = _cache.step_key(state.image_id, created_by, config)
        if not self.options.nocache:
            hit = _cache.lookup(
                self.images, self.cache, key, state.image_id, created_by, config, self._cache_from
            )
            if hit is not None:
                self.emit("cache")
                state.image_id = hit
                state.config = config
                return
        image_id = make()
        self.cache.put(key, image_id, state.image_id)
        state.image_id = image_id
        state.config = config

    def _do_arg(self, state: _Stage, instruction: ins.Arg) -> None:
        parts = []
        env = self._env(state)
        for definition in instruction.args:
            key = definition.key
            value = self._expand(definition.value, env) if definition.value is not None else None
            state.args[key] = value
            self.referenced.add(key)
            parts.append(key if value is None else f"{key}={value}")
        self._meta_step(state, state.config, "ARG " + " ".join(parts))

    def _do_env(self, state: _Stage, instruction: ins.Env) -> None:
        env = self._env(state)
        pairs = [(self._expand(p.key, env), self._expand(p.value, env)) for p in instruction.pairs]
        config = attrs.evolve(state.config, env=_commit._env_list(state.config.env, pairs))
        self._meta_step(state, config, "ENV " + " ".join(f"{k}={v}" for k, v in pairs))

    def _do_label(self, state: _Stage, instruction: ins.Label) -> None:
        env = self._env(state)
        pairs = [(self._expand(p.key, env), self._expand(p.value, env)) for p in instruction.pairs]
        labels = dict(state.config.labels)
        labels.update(pairs)
        config = attrs.evolve(state.config, labels=labels)
        self._meta_step(state, config, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs))

    def _do_maintainer(self, state: _Stage, instruction: ins.Maintainer) -> None:
        self._meta_step(state, state.config, "MAINTAINER " + instruction.maintainer)

    def _command(self, state: _Stage, instruction: ins.Run | ins.Cmd | ins.Entrypoint) -> list[str]:
        command = list(instruction.command)
        if not instruction.prepend_shell:
            return command
        line = command[0] if command else ""
        files = getattr(instruction, "files", ())
        if files:
            if len(files) == 1 and line.strip().startswith("<<") and " " not in line.strip():
                line = files[0].data  # the heredoc is the script, as BuildKit runs it
            else:
                line = line + "\n" + "".join(f"{f.data}{f.name}\n" for f in files)
        return [*self._shell(state), line]

    def _do_run(self, state: _Stage, instruction: ins.Run) -> None:
        args = self._command(state, instruction)
        build_env = self._build_env(state)
        save = args
        if build_env:
            shown = sorted(f"{k}={v}" for k, v in build_env if k not in _BUILTIN_ARGS or k in self.referenced)
            save = [f"|{len(shown)}", *shown, *args]
        created_by = " ".join(save)
        config = state.config

        def make() -> str:
            return self._run(state, args, build_env, config, created_by)

        self._cached(state, created_by, config, make)

    def _run(
        self, state: _Stage, args: list[str], env: list[tuple[str, str]], config: ImageConfig, created_by: str
    ) -> str:
        if state.image_id is None:
            raise BuildError(
                f"The command '{' '.join(args)}' returned a non-zero code: 127 (a scratch stage has no shell)"
            )
        network = self.options.network or "bridge"
        spec = ContainerSpec(
            image=state.image_id,
            command=args,
            entrypoint=(),
            env=dict(env),
            network="bridge" if network == "default" else network,
            extra_hosts=dict(self.options.extra_hosts),
            labels={BUILD_OWNER_LABEL: owner_token()},
        )
        container = self.containers.create(spec)
        ok = False
        try:
            self.emit("running", id=container.id)
            container.start()
            for stream, chunk in container.follow_output(poll_interval=0.02, until=self._cancelled):
                self.emit("output", text=chunk.decode(errors="replace"), stream=stream)
            self._check_cancelled()  # the container goes with the failed step, below
            code = container.wait()
            if code != 0:
                raise BuildError(
                    f"The command '{' '.join(args)}' returned a non-zero code: {code}", exit_code=code
                )
            image = container.commit(config=config, created_by=created_by, pause=False)
            ok = True
        finally:
            # a failed step's container always goes (nothing is left of a failed build)
            if not ok or self.options.rm or self.options.forcerm:
                with contextlib.suppress(ContainerkitError):
                    container.remove(force=True)
                self.emit("removed", id=container.id)
        return image.id

    def _do_cmd(self, state: _Stage, instruction: ins.Cmd) -> None:
        command = self._command(state, instruction)
        config = attrs.evolve(state.config, cmd=command)
        state.cmd_set = True
        self._meta_step(state, config, "CMD " + _go_quoted(command))

    def _do_entrypoint(self, state: _Stage, instruction: ins.Entrypoint) -> None:
        command = self._command(state, instruction)
        # an ENTRYPOINT resets the CMD the base image had, not one this stage set (cmdSet)
        config = attrs.evolve(state.config, entrypoint=command)
        if not state.cmd_set:
            config = attrs.evolve(config, cmd=None)
        self._meta_step(state, config, "ENTRYPOINT " + _go_quoted(command))

    def _do_workdir(self, state: _Stage, instruction: ins.Workdir) -> None:
        path = self._expand(instruction.path, self._env(state))
        workdir = posixpath.normpath(posixpath.join(state.config.working_dir or "/", path))
        config = attrs.evolve(state.config, working_dir=workdir)
        created_by = " ".join([*self._shell(state), f"#(nop) WORKDIR {workdir}"])
        view = self._view(state.image_id)
        if view is not None and view.kind(workdir) == "dir":
            self._cached(
                state,
                created_by,
                config,
                lambda: _commit.derive(self.images, state.image_id, config, created_by=created_by).id,
            )
            return
        owner = self._owner(state, state.config.user) if state.config.user else (0, 0)

        def write(layer: LayerTar) -> None:
            add_parents(layer, view, workdir, owner, include_self=True)

        self._cached(
            state,
            created_by,
            config,
            lambda: add_layer(self.images, state.image_id, write, config, created_by=created_by).id,
        )

    def _do_user(self, state: _Stage, instruction: ins.User) -> None:
        user = self._expand(instruction.user, self._env(state))
        self._meta_step(state, attrs.evolve(state.config, user=user), "USER " + user)

    def _do_expose(self, state: _Stage, instruction: ins.Expose) -> None:
        env = self._env(state)
        ports: list[str] = []
        for port in instruction.ports:
            try:
                ports.extend(self._shell_lex.expand_words(port, env))
            except InvalidArgument as exc:
                raise BuildError(str(exc)) from None
        exposed = set(state.config.exposed_ports)
        for port in ports:
            number, _, proto = port.partition("/")
            low, _, high = number.partition("-")
            if not low.isdigit() or (high and not high.isdigit()):
                raise BuildError(f"invalid containerPort: {port}")
            for n in range(int(low), int(high or low) + 1):
                exposed.add(f"{n}/{(proto or 'tcp').lower()}")
        config = attrs.evolve(state.config, exposed_ports=tuple(sorted(exposed)))
        self._meta_step(state, config, "EXPOSE " + " ".join(ports))

    def _do_volume(self, state: _Stage, instruction: ins.Volume) -> None:
        env = self._env(state)
        volumes = [self._expand(v, env) for v in instruction.volumes]
        for volume in volumes:
            if not volume.strip():
                raise BuildError("VOLUME specified can not be an empty string")
        config = attrs.evolve(state.config, volumes=tuple(sorted({*state.config.volumes, *volumes})))
        self._meta_step(state, config, f"VOLUME [{' '.join(volumes)}]")

    def _do_stopsignal(self, state: _Stage, instruction: ins.StopSignal) -> None:
        signal = self._expand(instruction.signal, self._env(state))
        self._meta_step(state, attrs.evolve(state.config, stop_signal=signal), "STOPSIGNAL " + signal)

    def _do_healthcheck(self, state: _Stage, instruction: ins.Healthcheck) -> None:
        test = tuple(instruction.test)
        if test and test[0] == "NONE":
            check = Healthcheck(test=("NONE",))
        else:
            check = Healthcheck(
                test=test,
                interval=instruction.interval / 1e9,
                timeout=instruction.timeout / 1e9,
                start_period=instruction.start_period / 1e9,
                start_interval=instruction.start_interval / 1e9,
                retries=instruction.retries,
            )
        config = attrs.evolve(state.config, healthcheck=check)
        # Go's %q of dockerd's HealthConfig (StartInterval only where set: dockerd 25+ has it)
        durations = [instruction.interval, instruction.timeout, instruction.start_period]
        if instruction.start_interval:
            durations.append(instruction.start_interval)
        shown = " ".join(json.dumps(t) for t in test)
        times = " ".join(f'"{_go_duration(d)}"' for d in durations)
        self._meta_step(state, config, f"HEALTHCHECK &{{[{shown}] {times} '\\x{instruction.retries:02x}'}}")

    def _do_shell(self, state: _Stage, instruction: ins.Shell) -> None:
        config = attrs.evolve(state.config, shell=tuple(instruction.shell))
        self._meta_step(state, config, f"SHELL [{' '.join(instruction.shell)}]")

    def _do_onbuild(self, state: _Stage, instruction: ins.Onbuild) -> None:
        trigger = instruction.expression.strip()
        keyword = trigger.split(None, 1)[0].upper() if trigger else ""
        if keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            raise BuildError(f"{keyword} isn't allowed as an ONBUILD trigger")
        config = attrs.evolve(state.config, on_build=(*state.config.on_build, trigger))
        self._meta_step(state, config, "ONBUILD " + trigger)

    # -- COPY and ADD -------------------------------------------------------------------------

    def _view(self, image_id: str | None) -> MergedView | None:
        if image_id is None:
            return None
        view = self._views.get(image_id)
        if view is None:
            view = self.images.view(image_id)  # from the unpacked layers (no blob is kept)
            self._views[image_id] = view
        return view

    def _owner(self, state: _Stage, chown: str) -> tuple[int, int]:
        view = self._view(state.image_id)

        def read(path: str) -> bytes | None:
            return view.read_file(path) if view is not None else None

        user, _, group = chown.partition(":")
        try:
            resolved = resolve_user(chown if group else user, read)
        except (NotFound, InvalidArgument) as exc:
            raise BuildError(f"unable to convert uid/gid chown string to host mapping: {exc}") from None
        if not group:
            # a user alone: its uid, and a gid of the same number (moby parseChownFlag)
            return resolved.uid, resolved.uid if user.isdigit() else resolved.gid
        return resolved.uid, resolved.gid

    def _do_copy(self, state: _Stage, instruction: ins.Copy) -> None:
        self._copy(state, instruction, "COPY", instruction.from_)

    def _do_add(self, state: _Stage, instruction: ins.Add) -> None:
        self._copy(state, instruction, "ADD", "")

    def _copy(self, state: _Stage, instruction: ins.Copy | ins.Add, name: str, from_: str) -> None:
        env = self._env(state)
        dest = self._expand(instruction.dest, env)
        sources = [self._expand(s, env) for s in instruction.sources]
        chown = self._expand(instruction.chown, env) if instruction.chown else ""
        chmod = self._expand(instruction.chmod, env) if instruction.chmod else ""
        mode: int | None = None
        if chmod:
            try:
                mode = int(chmod, 8)
            except ValueError:
                raise BuildError(f"invalid chmod parameter {chmod!r}: expected an octal mode") from None
        owner = self._owner(state, chown) if chown else (0, 0)
        workdir = state.config.working_dir or "/"
        dest_is_dir = (
            dest.endswith("/")
            or dest.endswith("/.")
            or dest == "."
            or len(sources) + len(instruction.contents) > 1
        )
        target = posixpath.normpath(posixpath.join(workdir, dest))
        view = self._view(state.image_id)
        if not dest_is_dir and view is not None and view.kind(target) == "dir":
            dest_is_dir = True
        plan = CopyPlan(self, view, target, dest_is_dir, owner, mode, name == "ADD")
        from_ = self._expand(from_, env) if from_ else ""
        if from_:
            hashes = plan.from_image(self._from_image(from_), sources)
        else:
            hashes = []
            matched = [
                found
                for source in sources
                if not (name == "ADD" and is_url(source))
                for found in self.context.sources(source, name)
            ]
            if len(matched) > 1 and not dest_is_dir:
                raise BuildError(
                    f"When using {name} with more than one source file, the destination must be a "
                    "directory and end with a /"
                )
            for source in sources:
                if name == "ADD" and is_url(source):
                    hashes.append(plan.url(source))
            hashes += [plan.local(found) for found in matched]
            for content in instruction.contents:
                data = self._expand(content.data, env) if content.expand else content.data
                hashes.append(plan.inline(content.path, data.encode()))
        # dockerd's "%s %s%s in %s ": no space between --chown=... and the hash
        chown_part = f"--chown={chown}" if chown else ""
        chmod_part = f"--chmod={chmod} " if chmod else ""
        created_by = " ".join(
            [*self._shell(state), f"#(nop) {name} {chmod_part}{chown_part}{combined_hash(hashes)} in {dest} "]
        )
        config = state.config
        self._cached(
            state,
            created_by,
            config,
            lambda: add_layer(self.images, state.image_id, plan.write, config, created_by=created_by).id,
        )

    def _from_image(self, from_: str) -> str:
        if from_.lower() in self.stage_images:
            image_id = self.stage_images[from_.lower()]
            if image_id is None:
                raise BuildError(f"COPY --from={from_}: the stage is empty (FROM scratch)")
            return image_id
        return self._base_image(from_, None)


def _exists(images: ImageCollection, ref: str) -> bool:
    try:
        images.get(ref)
    except (NotFound, InvalidArgument):
        return False
    return True


def _go_quoted(items: Sequence[str]) -> str:
    """Go's ``%q`` of a string slice: ``["/bin/sh" "-c" "echo hi"]``."""
    return "[" + " ".join(json.dumps(item, ensure_ascii=False) for item in items) + "]"


def _go_duration(ns: int) -> str:
    if ns == 0:
        return "0s"
    seconds = ns / 1e9
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes}m0s" if minutes < 60 else f"{minutes // 60}h{minutes % 60}m0s"
    return f"{seconds:g}s"


def _read_dockerfile(root: Path, name: str) -> str:
    path = Path(name) if os.path.isabs(name) else root / name
    candidates = [path]
    if name == "Dockerfile":
        candidates.append(root / "dockerfile")
    for candidate in candidates:
        try:
            return candidate.read_text()
        except (FileNotFoundError, IsADirectoryError):
            continue
    raise NotFound(f"Cannot locate specified Dockerfile: {name}")


def cleanup_files(paths: Iterable[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
