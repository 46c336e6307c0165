"""Saving and loading model folders: config.json + one safetensors file per part. Never pickles.

Loading is strict: a missing, unexpected or wrongly shaped tensor is a CheckpointError that names the part
and the tensor. Optimizer state for resuming is stored the same way (tensors in safetensors, the rest in JSON).

A model folder is untrusted input (anyone can hand one over), so loading one is bounded and checked:
- every part is looked up with `part_path`, which refuses a part that is, or sits behind, a link out of the folder
  (`tokenizer.json -> /etc/passwd`), before anything opens it; the built-in models are trusted as installed;
- config.json is at most MAX_CONFIG_BYTES, a JSON object with exactly the keys `model_header` writes;
- `build_part` builds a part on the meta device first (no memory), bounds its size (MAX_ELEMENTS numbers) and
  compares its tensors with the weights file's header (which safetensors reads without the data), and only then
  builds it for real and loads the weights;
- weights that hold NaN or infinity are refused, naming the part and the tensor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn
from torch.overrides import TorchFunctionMode

from .errors import CheckpointError, ConfigError, WordbrushError
from .utils.atomic import write_bytes, write_json
from .version import __version__

# shapes-minilm needs the minilm extra (pip install wordbrush[minilm])
BUILTIN = ("shapes", "shapes-minilm", "emoji", "shapes-gan")
HEADER_KEYS = ("wordbrush_version", "kind", "config")  # the top level of a model's config.json (model_header)
MAX_CONFIG_BYTES = 1 << 20  # a model's config.json is a few KB; a larger one is not read
MAX_JSON_BYTES = 256 << 20  # any other JSON this module reads (optimizer state)
MAX_HEADER_BYTES = 16 << 20  # a safetensors header (the JSON before the data): ~100,000 tensors' names and shapes
MAX_TENSORS = 65_536  # tensors in one weights file
MAX_ELEMENTS = 2_000_000_000  # numbers in one part (8 GB of float32): a config asking for more is refused
MAX_IMAGE_SIZE = 8192  # pixels a side that a saved model may draw or read (not every size is tied to its weights)


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


def _is_builtin(folder: Path) -> bool:
    """Is `folder` one of the built-in models inside the installed package (trusted as installed)?"""
    real = folder.resolve()
    return any(real == builtin_path(name).resolve() for name in BUILTIN)


def part_path(folder: str | Path, name: str, what: str, kind: str = "file") -> Path:
    """folder/name, a part of a model folder, checked before anything reads it: it must exist as a `kind` ("file"
    or "dir") and, once every link is followed, lie inside the folder (a part that links out of it, such as
    tokenizer.json -> /etc/passwd, is refused unread). The built-in models are trusted as installed."""
    folder = Path(folder)
    path = folder / name
    if not _is_builtin(folder):
        try:
            root, real = folder.resolve(strict=True), path.resolve()
        except (OSError, RuntimeError) as e:  # a link loop (RuntimeError before Python 3.13)
            raise CheckpointError(f"{what}: cannot follow {path}: {e}") from None
        if not real.is_relative_to(root):
            raise CheckpointError(f"{what}: {path} is a link to {real}, outside the model folder; refused "
                                  "(a model folder's parts must lie inside it)")
    if kind == "dir" and not path.is_dir():
        raise CheckpointError(f"{what}: {path} is not a folder")
    if kind == "file" and not path.is_file():
        raise CheckpointError(f"{what}: {path} not found" if not path.exists() else f"{what}: {path} is not a file")
    return path


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
    (text/minilm.py): those are restored when the module is built. Written atomically, like every file here."""
    module = unwrap(module)
    skip = packaged_keys(module)
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items() if k not in skip}
    write_bytes(path, save(state))  # atomically (utils/atomic.py): a kill never leaves half a weights file


def _compare(part: str, file: str, expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> None:
    """The tensors a module expects against those a weights file holds: exactly the same names and shapes."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing:
        raise CheckpointError(f"{part}: tensor {missing[0]!r} missing from {file} ({len(missing)} missing)")
    if extra:
        raise CheckpointError(f"{part}: unexpected tensor {extra[0]!r} in {file} ({len(extra)} unexpected)")
    for k, shape in expected.items():
        if tuple(found[k]) != tuple(shape):
            raise CheckpointError(f"{part}: tensor {k!r} has shape {tuple(found[k])} in {file}, "
                                  f"the model expects {tuple(shape)}")


def check_finite(state: dict[str, torch.Tensor], part: str, file: str) -> None:
    """Refuse weights holding NaN or infinity: a model trained into NaN would otherwise draw noise without a word."""
    for k, v in state.items():
        if v.is_floating_point() or v.is_complex():
            # in chunks: a bool mask of one huge tensor at once would double its memory
            if not all(bool(torch.isfinite(c).all()) for c in v.reshape(-1).split(1 << 24)):
                raise CheckpointError(f"{part}: tensor {k!r} in {file} holds NaN or infinite values; refused")


def weights_header(path: str | Path, part: str) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor in a safetensors file, read from its header alone (no tensor data)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{part}: weights file missing: {path}")
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")  # the header's length comes first
    except OSError as e:
        raise CheckpointError(f"{part}: cannot read {path}: {e.strerror}") from None
    if n > MAX_HEADER_BYTES:
        raise CheckpointError(f"{part}: cannot read {path}: it declares a {n:,}-byte header, more than the "
                              f"{MAX_HEADER_BYTES:,} a weights file may have (not a safetensors file?)")
    try:
        with safe_open(str(path), "pt") as f:  # checks that the header's offsets fit the file: a truncated one fails
            keys = list(f.keys())
            if len(keys) > MAX_TENSORS:
                raise CheckpointError(f"{part}: {path.name} holds {len(keys):,} tensors; the limit is {MAX_TENSORS:,}")
            return {k: tuple(f.get_slice(k).get_shape()) for k in keys}
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{part}: cannot read {path}: {e}") from None


class _ShapesOnly(TorchFunctionMode):
    """Under torch.device("meta"): skips the value fills of initialisers (a meta tensor has no values, and torch's
    normal_ on one costs a 2 s import) and stops a build that creates more tensors than any model of its weights
    file could (a config.json asking for depth 1,000,000)."""

    FILLS = frozenset({"normal_", "uniform_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_",
                       "xavier_uniform_", "xavier_normal_", "orthogonal_", "sparse_", "zeros_", "ones_", "constant_",
                       "eye_", "dirac_", "fill_", "zero_", "random_", "exponential_", "bernoulli_", "cauchy_",
                       "log_normal_", "geometric_"})
    RANDOM = frozenset({"randn", "rand"})
    SCALAR_OPS = frozenset({"mul", "__mul__", "__rmul__", "div", "__truediv__", "add", "__add__", "__radd__",
                            "sub", "__sub__"})

    def __init__(self, max_calls: int):
        super().__init__()
        self.calls, self.max_calls = 0, max_calls

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.calls += 1
        if self.calls > self.max_calls:
            raise _TooBig(self.calls)
        name = getattr(func, "__name__", "")
        if "device" in kwargs:  # nothing built here is ever allocated, even where a constructor names a device
            kwargs["device"] = "meta"
        if name in self.RANDOM:  # torch's meta randn is a Python reference that imports sympy (0.6 s)
            kwargs.pop("generator", None)
            return torch.empty(*args, **kwargs)
        if name in self.FILLS:
            target = args[0] if args else kwargs.get("tensor", kwargs.get("self"))
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        if name in self.SCALAR_OPS and len(args) == 2 and not kwargs and isinstance(args[0], torch.Tensor) \
                and args[0].is_meta and isinstance(args[1], (int, float)) and not isinstance(args[1], bool):
            # `torch.randn(d) * 0.02` on meta runs torch's Python reference, which imports torch._dynamo (2 s)
            dtype = torch.result_type(args[0], args[1]) if name not in ("div", "__truediv__") else (
                args[0].dtype if args[0].is_floating_point() else torch.get_default_dtype())
            return torch.empty(args[0].shape, dtype=dtype, device="meta")
        return func(*args, **kwargs)


class _TooBig(Exception):
    pass


def _build(make: Callable[[], nn.Module], part: str) -> nn.Module:
    """make(), with what it raises from a config that cannot be built as one CheckpointError line."""
    try:
        return make()
    except CheckpointError:
        raise
    except WordbrushError as e:
        raise CheckpointError(f"{part}: {e}") from None
    except _TooBig:
        raise
    except Exception as e:  # a config passes its own checks but asks for something torch cannot build
        msg = (str(e).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"{part}: config.json describes a model that cannot be built "
                              f"({type(e).__name__}: {msg})") from None


def build_part(make: Callable[[], nn.Module], path: str | Path, part: str) -> nn.Module:
    """The module `make` builds from a saved config, with the weights file `path` loaded into it. Before anything
    is allocated, the module is built on the meta device (shapes, no memory): it must hold at most MAX_ELEMENTS
    numbers and exactly the tensors, with the shapes, that the file's header lists (but those an installed package
    provides). Only then is it built for real and loaded (load_part)."""
    path = Path(path)
    found = weights_header(path, part)
    rng = torch.get_rng_state()  # building on meta draws nothing, but leave nothing to chance
    mode = _ShapesOnly(max_calls=64 * len(found) + 20_000)
    try:
        with torch.device("meta"), mode:
            shell = _build(make, part)
    except _TooBig:
        raise CheckpointError(f"{part}: config.json describes a model far larger than {path.name}, which holds "
                              f"{len(found)} tensors; refused before building it") from None
    finally:
        torch.set_rng_state(rng)
    seen: set[int] = set()
    numbers = 0
    for t in [*shell.parameters(), *shell.buffers()]:
        if id(t) not in seen:
            seen.add(id(t))
            numbers += t.numel()
    if numbers > MAX_ELEMENTS:
        raise CheckpointError(f"{part}: config.json describes a model of {numbers:,} numbers; the limit is "
                              f"{MAX_ELEMENTS:,}")
    skip = packaged_keys(shell)
    _compare(part, path.name, {k: tuple(v.shape) for k, v in shell.state_dict().items() if k not in skip}, found)
    del shell
    module = _build(make, part)
    load_part(module, path, part)
    return module


def load_part(module: nn.Module, path: str | Path, part: str) -> None:
    """Load `path` into `module`, exactly: every tensor present (but those a package provides), no extras,
    same shapes, every number finite."""
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
    _compare(part, path.name, {k: tuple(v.shape) for k, v in own.items()},
             {k: tuple(v.shape) for k, v in state.items()})
    check_finite(state, part, path.name)
    module.load_state_dict({**full, **state}, strict=True)


def read_json(path: str | Path, what: str, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """A JSON object from a file of at most max_bytes; every failure is one CheckpointError line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what}: {path} not found")
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)  # never more than the limit, even if the file grows meanwhile
    except OSError as e:
        raise CheckpointError(f"{what}: cannot read {path}: {e.strerror}") from None
    if len(raw) > max_bytes:
        raise CheckpointError(f"{what}: {path} is larger than {max_bytes:,} bytes; not read")
    try:
        data = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise CheckpointError(f"{what}: {path} is nested too deeply to be read") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, or an integer of more than 4300 digits
        raise CheckpointError(f"{what}: {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{what}: {path} does not hold a JSON object")
    return data


def model_header(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"wordbrush_version": __version__, "kind": kind, "config": config}


def read_header(folder: str | Path, what: str) -> tuple[str, dict[str, Any]]:
    """The kind and config of folder/config.json (what model_header wrote), checked: a part inside the folder, at
    most MAX_CONFIG_BYTES, exactly the keys model_header writes, `kind` a string and `config` an object."""
    path = part_path(folder, "config.json", what)
    header = read_json(path, what, MAX_CONFIG_BYTES)
    unknown = sorted(set(header) - set(HEADER_KEYS))
    if unknown:
        raise CheckpointError(f"{path}: unknown key {unknown[0]!r} at the top level (known: {', '.join(HEADER_KEYS)})")
    kind, config = header.get("kind"), header.get("config")
    if not isinstance(kind, str):
        raise CheckpointError(f"{path}: 'kind' must be a string naming the model, got {kind!r:.60}")
    if not isinstance(header.get("wordbrush_version", ""), str):
        raise CheckpointError(f"{path}: 'wordbrush_version' must be a string")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: 'config' must be an object, got {type(config).__name__}")
    return kind, config


def read_model_config(folder: str | Path, kind: str, cls: type, what: str) -> Any:
    """The config dataclass `cls` of a saved model folder whose config.json says `kind` (written by model_header);
    every mismatch is a CheckpointError naming the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{what} folder not found: {folder}")
    found, config = read_header(folder, kind)
    if found != kind:
        raise CheckpointError(f"{folder} holds a {found!r:.60} model, not a {what}")
    return config_from(folder, config, cls, kind)


def check_image_size(folder: str | Path, size: int, what: str) -> None:
    """A saved config's image_size, bounded: a CLIP that pools its grid reads any size with the same weights, and
    would resize every input to what its config.json says."""
    if size > MAX_IMAGE_SIZE:
        raise CheckpointError(f"{Path(folder)}/config.json: {what}.image_size {size:,} is more than the "
                              f"{MAX_IMAGE_SIZE:,} pixels a saved model may have")


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
    write_bytes(path, save(tensors))
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
