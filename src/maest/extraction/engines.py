"""Engines: where the tracks of a run are computed; everything else about a run stays in its driver.

A driver (:func:`maest.extraction.extract`, :func:`maest.extraction.run_files`, and through them
``maest tag``, head fitting and ``maest eval``) lists the files, checks settings, resumes and writes;
an :class:`Engine` turns ``(items, pipeline, mode, options)`` into one ``(item, result, reason)`` per
item. ``local`` decodes in worker processes and runs the model in this process; ``ray``
(:class:`maest.distributed.RayEngine`) runs both on a Ray cluster. A new engine (Dask, Spark) is
one class with :meth:`Engine.placement`, :meth:`Engine.run` and :meth:`Engine.close`, and one line
in :data:`ENGINES`; the CLI's ``--engine`` takes its choices from there.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from maest.batching import TrackResult
from maest.extraction.errors import ExtractError
from maest.extraction.files import AudioItem
from maest.extraction.tracks import process
from maest.inference import EmbedOptions, MaestPipeline, load_model

TrackOutcome = tuple[AudioItem, TrackResult | None, str | None]
"""``(item, result, None)`` or ``(item, None, reason)``: what an engine yields once per item."""

ENGINES: dict[str, str] = {
    "local": "maest.extraction.engines:LocalEngine",
    "ray": "maest.distributed.engine:RayEngine",
}
"""Engine name -> ``module:class``; imported only when chosen (Ray stays an optional dependency)."""


class EngineError(ExtractError):
    """An engine name or option that does not exist; the message lists what does."""


@runtime_checkable
class Engine(Protocol):
    """Computes the tracks of a run. Use as a context manager (or call :meth:`close`): an engine may
    hold a cluster, and closing it releases what it started."""

    name: ClassVar[str]

    def placement(self, device: str | None, precision: str | None) -> tuple[str | None, str | None]:
        """The device and precision the driver's pipeline is loaded with, for a run asked to use
        ``device`` and ``precision``; the engine readies itself for them (e.g. joins a cluster)."""

    def run(self, items: Sequence[AudioItem], pipeline: MaestPipeline, mode: str, options: EmbedOptions,
            batch_size: int) -> Iterator[TrackOutcome]:
        """One outcome per item, in any order; ``mode`` is "embed" or "tag" (:meth:`MaestPipeline.runner`).
        A result holding NaN or infinity comes back as a failure, never as a result."""

    def close(self) -> None:
        """Release what the engine started (idempotent)."""


class EngineBase:
    """Defaults and context-manager plumbing for an :class:`Engine`."""

    name: ClassVar[str] = ""

    def placement(self, device: str | None, precision: str | None) -> tuple[str | None, str | None]:
        return device, precision

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class LocalEngine(EngineBase):
    """Decoding in ``decode_workers`` processes (0: in this process), the model in this process."""

    name = "local"

    def __init__(self, decode_workers: int = 0):
        if isinstance(decode_workers, bool) or not isinstance(decode_workers, int) or decode_workers < 0:
            raise ValueError(f"decode_workers must be a whole number >= 0, got {decode_workers!r}")
        self.decode_workers = decode_workers

    def run(self, items: Sequence[AudioItem], pipeline: MaestPipeline, mode: str, options: EmbedOptions,
            batch_size: int) -> Iterator[TrackOutcome]:
        batcher = pipeline.batcher(pipeline.runner(mode, options), options, batch_size)
        # A spec carries its resampler; plain per-segment options decode as the pipeline's decoder does.
        decoder = pipeline.decoder_for(getattr(options, "resampler", None))
        return process(items, batcher, decoder, self.decode_workers)


def load_pipeline(engine: Engine, model: str | os.PathLike | MaestPipeline | Any, device: str | None = None,
                  batch_size: int = 8, precision: str | None = None) -> MaestPipeline:
    """The driver's pipeline of ``model``, where ``engine`` wants it; a loaded pipeline is kept as it is
    (at its own precision), the engine readied for it."""
    if isinstance(model, MaestPipeline):
        engine.placement(device, precision or model.precision)
        return model
    device, precision = engine.placement(device, precision)
    return load_model(model, device, batch_size, precision)


def engine_class(name: str) -> type:
    """The class registered as ``name`` in :data:`ENGINES`."""
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
    module, _, attribute = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def engine_options(name: str) -> set[str]:
    """The keyword options engine ``name`` takes (what a command line may pass it)."""
    parameters = inspect.signature(engine_class(name)).parameters
    return {p for p, spec in parameters.items() if spec.kind is inspect.Parameter.KEYWORD_ONLY
            or spec.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD}


def make_engine(name: str = "local", **options: Any) -> Engine:
    """Engine ``name`` with ``options`` (None values are left to the engine's defaults); an option the
    engine does not take is refused by name."""
    cls = engine_class(name)
    given = {key: value for key, value in options.items() if value is not None}
    unknown = sorted(set(given) - engine_options(name))
    if unknown:
        raise EngineError(f"the {name} engine does not take {', '.join(unknown)}; "
                          f"it takes {', '.join(sorted(engine_options(name))) or 'no options'}")
    return cls(**given)


def as_engine(engine: Engine | str | None, decode_workers: int = 0) -> tuple[Engine, bool]:
    """``(engine, owned)``: a name (or None: local with ``decode_workers``) is made here and owned (closed
    by the caller when done); an engine object is the caller's."""
    if engine is None or engine == "local":
        return LocalEngine(decode_workers), True
    if isinstance(engine, str):
        return make_engine(engine), True
    return engine, False


def uses_engine(function: Callable) -> Callable:
    """Let ``function``'s ``engine`` keyword be a name, None (local, with the call's ``workers``) or an
    engine: the body always gets an :class:`Engine`, and one made here is closed when the call ends,
    whichever way (a generator: when it is exhausted, closed or dropped)."""
    signature = inspect.signature(function)

    def resolve(args, kwargs):
        bound = signature.bind_partial(*args, **kwargs)
        engine, owned = as_engine(bound.arguments.get("engine"), bound.arguments.get("workers") or 0)
        bound.arguments["engine"] = engine
        return bound, engine, owned

    if inspect.isgeneratorfunction(function):
        @functools.wraps(function)
        def generator(*args, **kwargs):
            bound, engine, owned = resolve(args, kwargs)
            try:
                yield from function(*bound.args, **bound.kwargs)
            finally:
                if owned:
                    engine.close()
        return generator

    @functools.wraps(function)
    def call(*args, **kwargs):
        bound, engine, owned = resolve(args, kwargs)
        try:
            return function(*bound.args, **bound.kwargs)
        finally:
            if owned:
                engine.close()
    return call
