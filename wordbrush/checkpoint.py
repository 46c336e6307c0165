"""Saving and loading model folders: config.json + one safetensors file per part. Never pickles.

Loading is strict: a missing, unexpected or wrongly shaped tensor is a CheckpointError that names the part
and the tensor. Optimizer state for resuming is stored the same way (tensors in safetensors, the rest in JSON).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import CheckpointError, ConfigError
from .version import __version__

BUILTIN = ("shapes", "shapes-minilm", "emoji")  # shapes-minilm needs the minilm extra (pip install wordbrush[minilm])


def builtin_path(name: str) -> Path:
    """The folder of a built-in model inside the installed package."""
    return Path(str(resources.files("wordbrush") / "models" / name))


def model_folder(name_or_path: str | Path) -> Path:
    """The folder of a saved model, or of a built-in one by name. A built-in name wins over a same-named folder
    that holds no model (such as a dataset folder called "emoji")."""
    folder, name = Path(name_or_path), str(name_or_path)
    if not (folder / "config.json").is_file() and name in BUILTIN and builtin_path(name).is_dir():
        folder = builtin_path(name)
    if not folder.is_dir():
        raise CheckpointError(f"model {name!r} not found: no model folder or built-in model has that name "
                              f"(built-in: {', '.join(BUILTIN)})")
    return folder


def packaged_keys(module: nn.Module) -> set[str]:
    """Every state_dict key of `module` that a part inside it restores from an installed package (a part that
    has a `packaged_keys()` method, such as text/minilm.py's MiniLMText): those are not saved with a model."""
    keys: set[str] = set()
    for name, m in module.named_modules():
        if callable(getattr(m, "packaged_keys", None)):
            keys |= {f"{name}.{k}" if name else k for k in m.packaged_keys()}
    return keys


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module under DDP / torch.compile wrappers: weights are saved from it."""
    while True:
        if hasattr(module, "module") and isinstance(module.module, nn.Module):  # DistributedDataParallel
            module = module.module
        elif hasattr(module, "_orig_mod"):  # torch.compile
            module = module._orig_mod
        else:
            return module


def save_part(module: nn.Module, path: str | Path) -> None:
    """Every tensor of the module's state_dict except the frozen ones an installed package provides
    (text/minilm.py): those are restored when the module is built."""
    module = unwrap(module)
    skip = packaged_keys(module)
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items() if k not in skip}
    save_file(state, str(path))


def load_part(module: nn.Module, path: str | Path, part: str) -> None:
    """Load `path` into `module`, exactly: every tensor present (but those a package provides), no extras,
    same shapes."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{part}: weights file missing: {path}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{part}: cannot read {path}: {e}") from None
    full = module.state_dict()
    skip = packaged_keys(module)
    own = {k: v for k, v in full.items() if k not in skip}
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing:
        raise CheckpointError(f"{part}: tensor {missing[0]!r} missing from {path.name} ({len(missing)} missing)")
    if extra:
        raise CheckpointError(f"{part}: unexpected tensor {extra[0]!r} in {path.name} ({len(extra)} unexpected)")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{part}: tensor {k!r} has shape {tuple(state[k].shape)} in {path.name}, "
                                  f"the model expects {tuple(v.shape)}")
    module.load_state_dict({**full, **state}, strict=True)


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read_json(path: str | Path, what: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what}: {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{what}: {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{what}: {path} does not hold a JSON object")
    return data


def model_header(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"wordbrush_version": __version__, "kind": kind, "config": config}


def read_model_config(folder: str | Path, kind: str, cls: type, what: str) -> Any:
    """The config dataclass `cls` of a saved model folder whose config.json says `kind` (written by model_header);
    every mismatch is a CheckpointError naming the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{what} folder not found: {folder}")
    header = read_json(folder / "config.json", kind)
    if header.get("kind") != kind:
        raise CheckpointError(f"{folder} holds a {header.get('kind')!r} model, not a {what}")
    return config_from(folder, header.get("config", {}), cls, kind)


def config_from(folder: str | Path, data: Any, cls: type, key: str) -> Any:
    """The config dataclass `cls` from `data`, a part of folder/config.json; a mismatch is a CheckpointError."""
    from .config import from_dict

    try:
        return from_dict(cls, data, key)
    except ConfigError as e:
        raise CheckpointError(f"{Path(folder)}/config.json: {e}") from None


# ---------------------------------------------------------------------------------------------- optimizer


def save_optimizer(opt: torch.optim.Optimizer, path: str | Path, extra: dict[str, Any]) -> None:
    """Optimizer state as safetensors (tensors) + JSON (hyperparameters, scalar state, `extra`)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for name, val in st.items():
            if torch.is_tensor(val) and val.dim() > 0:
                tensors[f"{pid}.{name}"] = val.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(pid), {})[name] = float(val)
    save_file(tensors, str(path))
    meta = {"param_groups": sd["param_groups"], "scalars": scalars, "extra": extra}
    write_json(Path(path).with_suffix(".json"), meta)


def load_optimizer(opt: torch.optim.Optimizer, path: str | Path) -> dict[str, Any]:
    """Restore what save_optimizer wrote; returns its `extra` dict."""
    path = Path(path)
    meta = read_json(path.with_suffix(".json"), "optimizer state")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"optimizer state: cannot read {path}: {e}") from None
    state: dict[int, dict[str, Any]] = {}
    for key, val in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = val
    for pid, st in meta["scalars"].items():
        for name, val in st.items():
            state.setdefault(int(pid), {})[name] = torch.tensor(val)
    try:
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"optimizer state in {path} does not fit this model: {e}") from None
    return meta["extra"]
