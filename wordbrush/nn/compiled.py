"""torch.compile for the fixed-shape hot steps of sampling (dalle's one-token decoding step, maskgit's trunk, the
gan's forward, the VAE's decoder), behind one wrapper that never breaks a machine where compiling does not work.

Inductor's CPU backend writes fused C++ and needs a C++ compiler; its CUDA backend needs Triton. The wrapper
compiles on the first call (dynamic=False, fullgraph=True: one graph per shape and dtype, a few seconds to a
minute each, paid once per process), and where no compiler is found or compiling fails it runs the eager
function from then on, after one warning. What a compiled step computes is what the eager one computes, up to
float rounding; tests/test_compiled.py checks the tokens."""

from __future__ import annotations

import atexit
import copy
import os
import shutil
import tempfile
import warnings
from typing import Any, Callable

import torch
import torch.utils._pytree as pytree

RECOMPILE_LIMIT = 64  # shapes (batch rows x dtype) one step may be compiled for in a process; dynamo's default is 8


def compiler_missing(device: torch.device) -> str | None:
    """Why torch.compile cannot work for device here, or None where it can be tried."""
    if device.type == "cpu":
        names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]
        if not any(shutil.which(n) for n in names):
            return f"no C++ compiler ({', '.join(names)}) on PATH, which inductor's CPU backend needs"
        return None
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "no triton, which inductor's CUDA backend needs"
        return None
    return f"torch.compile is not used on {device.type}"


class Compiled:
    """fn(*tensors), compiled on first use; the eager fn where compiling cannot work or failed (one warning)."""

    def __init__(self, fn: Callable[..., Any], what: str, dynamic: bool | None = False):
        self.fn, self.what, self.dynamic = fn, what, dynamic  # dynamic: torch.compile's (None: a dimension seen
        # to change is compiled as a variable from the second graph on)
        self.compiled: Callable[..., Any] | None = None
        self.eager_only = False

    def __deepcopy__(self, memo: dict) -> "Compiled":  # a copied model recompiles for itself
        return Compiled(copy.deepcopy(self.fn, memo), self.what, self.dynamic)

    def _fall_back(self, why: str) -> None:
        self.eager_only = True
        warnings.warn(f"{self.what}: not compiled ({why}); sampling runs eager", stacklevel=3)

    def __call__(self, *args: Any) -> Any:
        if self.eager_only:
            return self.fn(*args)
        if self.compiled is None:
            device = next((a.device for a in args if isinstance(a, torch.Tensor)), torch.device("cpu"))
            why = compiler_missing(device)
            if why is not None:
                self._fall_back(why)
                return self.fn(*args)
            dynamo = torch._dynamo.config
            dynamo.recompile_limit = max(getattr(dynamo, "recompile_limit", 8), RECOMPILE_LIMIT)
            self.compiled = torch.compile(self.fn, dynamic=self.dynamic, fullgraph=True)
        try:
            return self.compiled(*args)
        except Exception as e:  # a compiler error surfaces here, before the graph runs: nothing was written
            self._fall_back(f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}")
            return self.fn(*args)


class _Method(torch.nn.Module):
    """module.name(*args) as a module of its own, for torch.export (which exports modules)."""

    def __init__(self, module: torch.nn.Module, name: str):
        super().__init__()
        self.module, self.name = module, name

    def forward(self, *args: Any) -> Any:
        return getattr(self.module, self.name)(*args)


class AheadOfTime:
    """A module's method compiled ahead of time on the CPU: torch.export, then AOTInductor with the weights frozen
    in (its freezing pass packs the linears' weights for oneDNN). The call then runs generated C++ with no Python
    or guard checks between kernels: R1's decoding step, batch 16, float32, 2 threads: ~3.4 ms through
    torch.compile, ~2.3 ms this way (docs/benchmarks.md). One package per shapes, strides and dtypes of the arguments,
    built on first use (seconds), in a temporary folder removed at exit; all are dropped and rebuilt when a weight
    of the module changes (another storage, or its version counter moved), so a frozen weight is never stale.
    Where exporting or compiling fails: one warning, then torch.compile (Compiled) from then on.

    dynamic(*args) -> torch.export's dynamic_shapes for those arguments: the dimensions it names are built as
    variables, so one package serves every size of them (the dalle's decoding step over a growing prefix)."""

    def __init__(self, fn: Callable[..., Any], what: str, dynamic: Callable[..., tuple] | None = None):
        self.fn, self.what, self.dynamic = fn, what, dynamic
        self.module: torch.nn.Module = fn.__self__
        self.packages: dict[Any, Callable[..., Any]] = {}
        self.weights: Any = None
        self.fallback: Compiled | None = None
        self.folder: str | None = None
        # where each parameter lives (its module's _parameters and its name), found on the first call (a deep copy
        # is still being built here): walking the module tree every call cost R1 ~0.2 ms a step of ~2.3 ms,
        # reading its 69 slots ~0.02 ms
        self.slots: list[tuple[dict, str]] | None = None
        self.variable: list[tuple[int, ...]] | None = None

    def __deepcopy__(self, memo: dict) -> "AheadOfTime":  # a copied model compiles for itself
        fn = copy.deepcopy(self.fn, memo)
        dynamic = None if self.dynamic is None else getattr(fn.__self__, self.dynamic.__name__)
        return AheadOfTime(fn, self.what, dynamic)

    def _build(self, args: tuple) -> Callable[..., Any]:
        from .packed import unpacked

        if self.folder is None:
            self.folder = tempfile.mkdtemp(prefix="wordbrush-aoti-")
            atexit.register(shutil.rmtree, self.folder, True)
        with unpacked(), torch.no_grad():  # plain linears, which the freezing pass packs itself
            dims = None if self.dynamic is None else {"args": self.dynamic(*args)}  # _Method's forward(*args)
            program = torch.export.export(_Method(self.module, self.fn.__name__), args, dynamic_shapes=dims)
        path = os.path.join(self.folder, f"step-{len(os.listdir(self.folder))}.pt2")
        path = torch._inductor.aoti_compile_and_package(program, package_path=path,
                                                        inductor_configs={"freezing": True})
        return _lean(torch._inductor.aoti_load_package(path))

    def __call__(self, *args: Any) -> Any:
        run = self._package(args)
        return self.fallback(*args) if run is None else run(_flat(args))

    def bind(self, *args: Any) -> Callable[..., Any]:
        """A call for a loop of steps whose arguments keep args' layout (shapes, but for the variable dimensions,
        strides and dtypes) while the module's weights stay as they are: the package for args run on the flat
        inputs, the checks __call__ makes on every call made once here (R1, batch 16: ~0.1 ms of a ~1.4 ms step);
        self where the fallback runs."""
        run = self._package(args)
        return self if run is None else lambda *a: run(_flat(a))

    def _package(self, args: tuple) -> Callable[[list[torch.Tensor]], Any] | None:
        """The package for args' layout and the module's current weights, built on first use; None where the
        fallback runs them."""
        if self.fallback is not None:
            return None
        if self.slots is None:
            self.slots = [(m._parameters, n) for m in self.module.modules() for n, p in m._parameters.items()
                          if p is not None]
        weights = [(d[n].data_ptr(), d[n]._version) for d, n in self.slots]  # a parameter replaced is seen too
        if weights != self.weights:
            self.packages, self.weights = {}, weights
        leaves = _flat(args)
        if self.variable is None:  # per tensor, the dimensions built as variables: not part of the key
            self.variable = [tuple(d or ()) for d in _flat(self.dynamic(*args))] if self.dynamic else \
                [()] * len(leaves)
        key = tuple((_blank(a.shape, dims) if dims else a.shape, a.stride(), a.dtype)  # a package reads its
                    for a, dims in zip(leaves, self.variable))  # inputs' strides as built
        run = self.packages.get(key)
        if run is None:  # the fallback until the package is built; for good if it cannot be
            self.fallback = Compiled(self.fn, self.what, None if self.dynamic else False)
            if compiler_missing(leaves[0].device) is not None:
                return None  # the fallback says why, once, and runs eager
            try:
                run = self.packages[key] = self._build(args)
            except Exception as e:  # noqa: BLE001 - any export or compiler failure: torch.compile instead
                why = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
                warnings.warn(f"{self.what}: not compiled ahead of time ({why}); torch.compile instead", stacklevel=3)
                return None
            self.fallback = None
        return run

    @property
    def ahead_of_time(self) -> bool:
        """Whether calls run a compiled package (not the torch.compile fallback)."""
        return self.fallback is None and bool(self.packages)

    @property
    def eager_only(self) -> bool:
        return self.fallback is not None and self.fallback.eager_only


def bound(step: Callable[..., Any], *args: Any) -> Callable[..., Any]:
    """step, or where it is an AheadOfTime step, its package for args' layout (AheadOfTime.bind)."""
    return step.bind(*args) if isinstance(step, AheadOfTime) else step


def _flat(args: tuple) -> list[Any]:
    """The tensors of a step's arguments in order, lists of tensors (the per-layer caches) opened: what a package
    takes, without pytree's generic walk. (Also the per-tensor entries of a dynamic_shapes tuple.)"""
    out: list[Any] = []
    for a in args:
        if isinstance(a, (list, tuple)):
            out.extend(a)
        else:
            out.append(a)
    return out


def _blank(shape: torch.Size, dims: tuple[int, ...]) -> tuple[int, ...]:
    """shape with the given dimensions as -1 (any size)."""
    return tuple(-1 if i in dims else n for i, n in enumerate(shape))


def _lean(package: Any) -> Callable[[list[torch.Tensor]], Any]:
    """A loaded AOTInductor package as a call on the flat list of its input tensors. The package's own __call__
    parses its input and output specs from JSON and flattens the arguments with pytree on every call (R1, batch 16,
    bfloat16: ~0.16 ms of a ~1.75 ms decoding step); here the output spec is parsed once and the inputs go
    straight to the loader."""
    loader = getattr(package, "loader", None)
    if loader is None or not hasattr(loader, "boxed_run"):  # another torch: the package's own call
        return lambda flat: package(*flat)
    out_spec = pytree.treespec_loads(loader.get_call_spec()[1])
    return lambda flat: pytree.tree_unflatten(loader.boxed_run(list(flat)), out_spec)


def pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """x (B, ...) -> (rows, ...), rows >= B, the last row repeated: a batch padded to the fixed
    shape a compiled step (or a fixed-size chunk) was built for; the extra rows are dropped after."""
    if rows == x.shape[0]:
        return x
    return torch.cat([x, x[-1:].expand(rows - x.shape[0], *x.shape[1:])])


def compiled_forward(model: torch.nn.Module) -> Callable[..., Any]:
    """model (for training) through torch.compile: inductor fuses the norms, GELUs, masks, softmaxes and casts
    between the matmuls, forward and backward (R1 under bf16 autocast, batch 32, 1 thread: 0.79 -> 0.69 s a step,
    the same loss curve). The model itself where no compiler is found, after one warning; its weights are the
    model's, so it saves and loads as before."""
    why = compiler_missing(next(model.parameters()).device)
    if why is not None:
        warnings.warn(f"training not compiled ({why}); it runs eager", stacklevel=2)
        return model
    return torch.compile(model, dynamic=False)
