"""Training configuration: YAML files validated into dataclasses, with ``key=value`` overrides.

Every key is typed and has a default; unknown keys and wrongly typed values are errors that name the
key, so a typo in an experiment file fails before any GPU time is spent.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MODEL_TYPES = ("maest", "effnet-b0")
INIT_KINDS = ("random", "deit", "passt", "maest")
OPTIMIZERS = ("adamw", "adam")
NORMALIZATIONS = ("discogs", "store")
VALIDATION_PROTOCOLS = ("center", "segments")


class ConfigError(ValueError):
    """A training config has an unknown key, a value of the wrong type, or an invalid combination."""


@dataclass
class ModelConfig:
    type: str = "maest"
    # Paper segment length (5/10/20/30 s) -> input frames and training patchout; None keeps `arch`'s.
    segment_seconds: int | None = 10
    # Overrides of the architecture dataclass (MaestConfig or EffNetConfig fields), e.g. depth.
    arch: dict[str, Any] = field(default_factory=dict)
    init: str = "random"
    # DeiT / PaSST state-dict file, or any checkpoint maest can load (init: maest).
    init_path: str | None = None
    # Teacher-student training (paper footnote; discogs-maest-30s-pw-73e-ts): a trained model (path or
    # published name) whose sigmoid outputs are the dist head's targets; None trains as usual.
    teacher: str | None = None
    # lambda: loss = (1 - lambda) BCE(cls head, labels) + lambda BCE(dist head, teacher probabilities).
    teacher_weight: float = 0.5


@dataclass
class DataConfig:
    # Folder holding the mel store and ground truth; the other paths are relative to it.
    root: str = "data/discogs"
    store: str = "store"
    train: str = "train.tsv"
    validation: str = "validation.tsv"
    labels: str = "labels.json"
    samples_per_epoch: int = 200_000
    # "discogs": the published constants (checkpoints stay compatible); "store": the store's stats.
    normalization: str = "discogs"
    num_workers: int = 8
    val_batch_size: int | None = None  # segments protocol: segments per forward pass
    # "center": one centre crop per track; "segments": the paper's protocol, half-overlapping
    # segments over the whole stored track, sigmoid outputs averaged per track.
    validation_protocol: str = "center"


@dataclass
class OptimConfig:
    # adamw: decoupled weight decay (paper); adam: L2 added to the gradient (torch.optim.Adam).
    optimizer: str = "adamw"
    lr: float = 1e-4
    final_lr: float = 1e-7
    warmup_epochs: int = 5
    warmup_shape: str = "linear"
    decay_start_epoch: int = 50
    decay_epochs: int = 50
    weight_decay: float = 1e-4


@dataclass
class AugmentConfig:
    mixup_alpha: float = 0.3  # 0 disables mixup
    time_masks: int = 20
    time_mask_frames: int = 8
    freq_masks: int = 5
    freq_mask_bands: int = 8


@dataclass
class SwaConfig:
    enabled: bool = True
    start_epoch: int = 50
    every_epochs: int = 5


@dataclass
class TrainerConfig:
    max_epochs: int = 130
    batch_size: int = 12  # per device
    # "auto": 16-mixed on CUDA, 32-true on CPU; or any Lightning precision ("bf16-mixed" ...).
    precision: str = "auto"
    accelerator: str = "auto"
    devices: int = 1  # per node; -1: all visible
    num_nodes: int = 1
    output_dir: str = "runs"
    # auto: resume from <output_dir>/<name>/checkpoints/last.ckpt if present; never; or a .ckpt path.
    resume: str = "auto"
    deterministic: bool = False
    log_every_n_steps: int = 50
    progress_bar: bool = True


@dataclass
class TrainConfig:
    """One training experiment; ``load_config`` reads it from YAML."""

    name: str = "maest"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    swa: SwaConfig = field(default_factory=SwaConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def run_dir(self) -> Path:
        return Path(self.trainer.output_dir) / self.name

    def data_path(self, name: str) -> Path:
        """A data file's path: ``data.<name>`` resolved against ``data.root`` (absolute stays)."""
        return Path(self.data.root) / getattr(self.data, name)


def from_dict(values: dict[str, Any]) -> TrainConfig:
    """Validate a nested mapping (parsed YAML) into a ``TrainConfig``."""
    config = _build(TrainConfig, values, "")
    _check(config)
    return config


def load_config(path: str | os.PathLike | None = None, overrides: typing.Sequence[str] = ()) -> TrainConfig:
    """Read a YAML experiment file or a shipped config by name (or the defaults); apply ``a.b=value`` overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        from maest.train.shipped import config_text, shipped_names

        found = config_text(path)  # a file, or the name of a config shipped with maest ("tiny")
        if found is None:
            raise ConfigError(f"no config file at {path}, and no shipped config of that name "
                              f"(shipped: {', '.join(shipped_names())})")
        text, path = found
        loaded = yaml.safe_load(text)
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        values = loaded or {}
    for override in overrides:
        apply_override(values, override)
    return from_dict(values)


def apply_override(values: dict[str, Any], override: str) -> None:
    """Set ``section.key=value`` in a raw config mapping; the value is parsed as YAML (``1e-4``, ``true``)."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} is not of the form key=value (e.g. optim.lr=2e-5)")
    key, text = override.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {override!r} has an empty key part")
    node = values
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(text) if text.strip() else None


def save_config(config: TrainConfig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return path


def arch_fields(model_type: str) -> type:
    """The architecture dataclass whose fields ``model.arch`` may override."""
    if model_type == "maest":
        from maest.configs import MaestConfig

        return MaestConfig
    from maest.effnet import EffNetConfig

    return EffNetConfig


def _check(config: TrainConfig) -> None:
    model, optim = config.model, config.optim
    _one_of("model.type", model.type, MODEL_TYPES)
    _one_of("model.init", model.init, INIT_KINDS)
    _one_of("optim.optimizer", optim.optimizer, OPTIMIZERS)
    _one_of("optim.warmup_shape", optim.warmup_shape, ("linear", "exponential"))
    _one_of("data.normalization", config.data.normalization, NORMALIZATIONS)
    _one_of("data.validation_protocol", config.data.validation_protocol, VALIDATION_PROTOCOLS)
    _check_teacher(model)
    if model.init != "random" and not model.init_path:
        raise ConfigError(f"model.init {model.init!r} needs model.init_path (a checkpoint file)")
    if model.type == "effnet-b0" and model.init not in ("random", "maest"):
        raise ConfigError("effnet-b0 initialises from random (or its own checkpoint via init: maest)")
    # Validate arch overrides against the architecture's own dataclass (types included).
    arch_cls = arch_fields(model.type)
    given = set(model.arch)
    checked = dataclasses.asdict(_build(arch_cls, dict(model.arch), "model.arch."))
    model.arch = {k: v for k, v in checked.items() if k in given}
    positive = {
        "trainer.max_epochs": config.trainer.max_epochs, "trainer.batch_size": config.trainer.batch_size,
        "trainer.num_nodes": config.trainer.num_nodes, "data.samples_per_epoch": config.data.samples_per_epoch,
        "optim.lr": optim.lr, "swa.every_epochs": config.swa.every_epochs,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be > 0, got {value}")
    if not 0 <= optim.final_lr <= optim.lr:
        raise ConfigError(f"optim.final_lr must be in [0, optim.lr = {optim.lr}], got {optim.final_lr}")
    aug = config.augment
    non_negative = {
        "optim.warmup_epochs": optim.warmup_epochs, "optim.decay_start_epoch": optim.decay_start_epoch,
        "optim.decay_epochs": optim.decay_epochs, "optim.weight_decay": optim.weight_decay,
        "augment.mixup_alpha": aug.mixup_alpha, "augment.time_masks": aug.time_masks,
        "augment.time_mask_frames": aug.time_mask_frames, "augment.freq_masks": aug.freq_masks,
        "augment.freq_mask_bands": aug.freq_mask_bands, "swa.start_epoch": config.swa.start_epoch,
        "data.num_workers": config.data.num_workers,
    }
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{key} must be >= 0, got {value}" + (" (0 disables mixup)" if "mixup" in key else ""))
    if config.data.val_batch_size is not None and config.data.val_batch_size <= 0:
        raise ConfigError(f"data.val_batch_size must be > 0 (or null: trainer.batch_size), got {config.data.val_batch_size}")


def _check_teacher(model: ModelConfig) -> None:
    """The teacher must exist before any training starts; its classes are checked against the labels
    when it is loaded (``maest.train.teacher.load_teacher``)."""
    if not 0.0 <= model.teacher_weight <= 1.0:
        raise ConfigError(f"model.teacher_weight must be in [0, 1] (the share of the teacher loss), "
                          f"got {model.teacher_weight}")
    if model.teacher is None:
        return
    if model.type != "maest":
        raise ConfigError(f"model.teacher needs a MAEST student (its dist token); model.type is {model.type!r}")
    from maest.registry import PUBLISHED

    if model.teacher not in PUBLISHED and not (model.teacher and Path(model.teacher).exists()):
        raise ConfigError(f"model.teacher: no checkpoint at {model.teacher!r}; give a path to a trained model "
                          f"or a published name ({', '.join(PUBLISHED)}), or null to train without a teacher")


def _one_of(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")


def _build(cls: type, values: Any, prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(prefix + k for k in unknown)}; known: {', '.join(names)}")
    kwargs = {}
    for name in names:
        if name in values:
            hint = hints[name]
            if dataclasses.is_dataclass(hint):
                kwargs[name] = _build(hint, values[name] if values[name] is not None else {}, f"{prefix}{name}.")
            else:
                kwargs[name] = _coerce(values[name], hint, prefix + name)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {error}") from error


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against a type hint; ints and numeric strings are accepted for floats."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} matches none of {hint}")
    if hint is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        (item,) = typing.get_args(hint) or (Any,)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if hint is float:
        if isinstance(value, str):
            # YAML 1.1 reads "1e-4" (no dot) as a string; accept numeric strings for float keys.
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{key} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if hint in (bool, str):
        if not isinstance(value, hint):
            raise ConfigError(f"{key} must be a {hint.__name__}, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported config type {hint}")
