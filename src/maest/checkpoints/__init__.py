"""Reading and writing MAEST (and EffNet-B0 baseline) weights in every published format.

One module per foreign format, each a pure ``state_dict -> state_dict`` converter (``official``,
``hf``, ``deit``, ``passt``); ``native`` is maest's own safetensors + JSON format for both network
types (``effnet`` is its EffNet-only face). Every failure is a :class:`CheckpointError` (``errors``).
Format detection lives here, in ``load_checkpoint``, and nowhere else; how a model string is
resolved (registry name, local path, hub id, ``local:``/``hf-hub:`` prefixes) is in
:mod:`maest.registry`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from maest.checkpoints.deit import deit_to_maest
from maest.checkpoints.effnet import is_effnet, load_effnet, save_effnet
from maest.checkpoints.errors import CheckpointError, EffNetCheckpointError
from maest.checkpoints.export import export  # noqa: F401  (maest.checkpoints.export(model, path, to=...))
from maest.checkpoints.files import only_tensors, read_file, unwrap
from maest.checkpoints.hf import export_hf, is_hf, load_hf
from maest.checkpoints.native import is_native, load_native, load_state_dict_strict, save_native
from maest.checkpoints.networks import Network
from maest.checkpoints.official import load_official, save_official, select_network
from maest.checkpoints.onnx import export_onnx
from maest.checkpoints.passt import passt_to_maest
from maest.configs import MaestConfig
from maest.model import Maest
from maest.registry import PUBLISHED, cache_dir, cached_path, parse_model_name

__all__ = [
    "CheckpointError",
    "EffNetCheckpointError",
    "Network",
    "cache_dir",
    "export_hf",
    "export_onnx",
    "init_from_deit",
    "init_from_passt",
    "is_effnet",
    "load_checkpoint",
    "load_effnet",
    "load_hf",
    "load_native",
    "load_official",
    "save_effnet",
    "save_native",
    "save_official",
]

HUB_FILES = ["config.json", "model.safetensors", "pytorch_model.bin"]
TORCH_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


def load_checkpoint(
    name_or_path: str | os.PathLike, *, swa: bool = True, map_location: str | torch.device = "cpu"
) -> Network:
    """A Maest (or an EffNet baseline) from a published name, a local file/folder in any supported
    format, or a hub id; see :mod:`maest.registry` for the order, and ``local:``/``hf-hub:`` prefixes.

    Local formats: native (folder or .safetensors; MAEST or EffNet), Hugging Face AST folder, original
    MAEST .ckpt/.pt/.pth (plain or Lightning; ``swa`` picks the SWA copy when there is one; a
    ``maest train`` checkpoint of the EffNet baseline gives an ``EffNet``). Any failure is one
    :class:`CheckpointError` naming the file and what is wrong.
    """
    source, name = parse_model_name(name_or_path)
    if source == "local":
        path = Path(name)
        if not path.exists():
            raise CheckpointError(f"no checkpoint at {path} (a local: path must exist)")
        return _load_path(path, swa, map_location)
    if source == "registry":
        return _load_published(name, swa, map_location)
    if source == "hub":
        if name.count("/") != 1 or name.startswith("/") or name.endswith("/"):
            raise CheckpointError(f"{name_or_path!r}: a hub id has the form OWNER/NAME")
        folder = _download(name, cache_dir() / name.replace("/", "--"))
        if folder is None:
            raise CheckpointError(f"{name!r} is not a local path and the Hugging Face hub is not reachable "
                                  "(offline, or huggingface_hub is not installed)")
        return _load_path(folder, swa, map_location)
    raise CheckpointError(f"no checkpoint at {name!r}; published names: {', '.join(PUBLISHED)}")


def _load_published(name: str, swa: bool, map_location: str | torch.device) -> Network:
    target = cache_dir() / name
    cached = cached_path(name)
    if cached is not None:
        return _with_registry_names(_load_path(cached, swa, map_location), name)
    hub_id = PUBLISHED[name].hub_id
    how = (f"Download config.json and model.safetensors (or pytorch_model.bin) from "
           f"https://huggingface.co/{hub_id} into {target}/ (or set MAEST_HOME to the folder that holds {name}/)")
    try:
        folder = _download(hub_id, target)
    except CheckpointError as error:
        raise CheckpointError(f"{error}. {how}") from error
    if folder is None:
        raise CheckpointError(
            f"weights for {name!r} are not in {target} and the Hugging Face hub is not reachable "
            f"(offline, or huggingface_hub is not installed). {how}"
        )
    return _with_registry_names(_load_path(folder, swa, map_location), name)


def _with_registry_names(model: Network, name: str) -> Network:
    model.config.name = name
    if model.config.labels is None:
        model.config.labels = PUBLISHED[name].config().labels
    return model


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def _download(hub_id: str, target: Path) -> Path | None:
    """Fetch an AST repository into ``target``; None when offline or huggingface_hub is missing."""
    if _hub_offline():
        return None
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        return Path(snapshot_download(repo_id=hub_id, allow_patterns=HUB_FILES, local_dir=str(target)))
    except Exception as error:  # network, auth, missing repo: all mean "not available"
        if target.exists() and not any(target.iterdir()):
            target.rmdir()
        raise CheckpointError(f"could not download {hub_id} from the Hugging Face hub: {_hub_failure(error)}") from error


def _hub_failure(error: Exception) -> str:
    """One short clause for a failed hub download, instead of huggingface_hub's paragraphs."""
    kinds = {cls.__name__ for cls in type(error).__mro__}
    if "GatedRepoError" in kinds:
        return "the repository is gated (accept its terms on huggingface.co, then `huggingface-cli login`)"
    if "RepositoryNotFoundError" in kinds:
        return "no such repository (or it is private)"
    if "LocalEntryNotFoundError" in kinds or kinds & {"ConnectionError", "ConnectError", "TimeoutError", "Timeout"}:
        return "the hub is not reachable (no network, or a proxy or firewall blocks huggingface.co)"
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status is not None:
        return f"the hub answered HTTP {status}"
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return first.rstrip(".")


def _load_path(path: Path, swa: bool, map_location: str | torch.device) -> Network:
    if path.is_dir() and (path / "config.json").is_file():
        _check_json(path / "config.json")
    if is_native(path):  # MAEST or the EffNet-B0 baseline trained by maest (same embed/tag API)
        return load_native(path, map_location)
    if is_hf(path):
        return load_hf(path, map_location)
    if path.is_file() and (path.suffix in TORCH_SUFFIXES or path.suffix == ".safetensors"):
        return load_official(path, swa, map_location)
    raise CheckpointError(
        f"{path}: unrecognised checkpoint; expected a maest folder/.safetensors, a Hugging Face AST folder "
        f"or an original MAEST .ckpt/.pt/.pth file"
    )


def _check_json(path: Path) -> None:
    """A folder's config.json must parse: otherwise say so, rather than "unrecognised checkpoint"."""
    try:
        json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error}); the file is damaged") from error


def _read_state(source: Mapping[str, torch.Tensor] | str | os.PathLike) -> dict[str, torch.Tensor]:
    """A backbone state dict given directly or read from a file (Lightning/timm wrappers removed)."""
    if isinstance(source, Mapping):
        return dict(source)
    state = unwrap(read_file(source))
    return only_tensors(select_network(state, swa=True), str(source))


def _init_backbone(config: MaestConfig, backbone: dict[str, torch.Tensor], source: str) -> Maest:
    """A fresh Maest whose non-head weights come from ``backbone`` (strict on every non-head key)."""
    model = Maest(config)
    state = model.state_dict()
    heads = {k: v for k, v in state.items() if k.startswith(("head.", "head_dist."))}
    load_state_dict_strict(model, {**backbone, **heads}, source)
    return model


def init_from_deit(config: MaestConfig, source: Mapping[str, torch.Tensor] | str | os.PathLike) -> Maest:
    """A Maest initialised from DeiT-B distilled 384 (state dict or file); heads stay random."""
    return _init_backbone(config, deit_to_maest(_read_state(source), config), "DeiT checkpoint")


def init_from_passt(config: MaestConfig, source: Mapping[str, torch.Tensor] | str | os.PathLike) -> Maest:
    """A Maest initialised from PaSST (state dict or file); heads stay random."""
    return _init_backbone(config, passt_to_maest(_read_state(source), config), "PaSST checkpoint")
