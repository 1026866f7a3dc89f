"""The fused step on the CPU: one call of a C++ multi-tensor kernel per bucket.

``_cpu_step.cpp`` holds the AdamP and SGDP steps of a whole bucket (pointer
tables, two passes per tensor: read-only row statistics, then the writes), so
the number of calls does not grow with the number of tensors. It is compiled
at first use (about 2 s) with the C++ compiler Inductor uses, into Inductor's
cache directory (``TORCHINDUCTOR_CACHE_DIR``), keyed by the source, the flags,
the compiler and the CPU's instruction sets; later processes load it.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import torch
from torch import Tensor

SOURCE = Path(__file__).with_name("_cpu_step.cpp")
FLAGS = (
    "-O3",
    "-march=native",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fopenmp",
    "-shared",
    "-fPIC",
    "-std=c++17",
)
DTYPES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
}
_P = ctypes.c_void_p
_I = ctypes.c_int64
_ADAMP_ARGS = [_I, _P, _P, _P, _P, _P, _P, _I, _P, _P, _P, _P, _I, _P]
_SGDP_ARGS = [_I, _P, _P, _P, _P, _P, _I, _P, _P, _P, _I, _I, _P]


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return ""


@functools.cache
def library(compiler: str) -> ctypes.CDLL:
    """The compiled kernel, built on first use into Inductor's cache directory."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(
        b"\0".join(s.encode() for s in (SOURCE.read_text(), *FLAGS, version, _cpu_flags()))
    ).hexdigest()[:20]
    target = Path(cache_dir()) / "adamp_torch" / f"cpu_step_{key}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            built = Path(tmp) / target.name
            result = subprocess.run(
                [compiler, *FLAGS, str(SOURCE), "-o", str(built)], capture_output=True, text=True
            )
            if result.returncode != 0:
                raise RuntimeError(
                    f"fused=True could not compile its CPU kernel with {compiler}:\n"
                    f"{result.stderr[-2000:]}\nuse fused=False"
                )
            os.replace(built, target)  # atomic: concurrent processes see all or nothing
    lib = ctypes.CDLL(str(target))
    for name in DTYPES.values():
        getattr(lib, f"adamp_{name}").argtypes = _ADAMP_ARGS
        getattr(lib, f"sgdp_{name}").argtypes = _SGDP_ARGS
    return lib


def _pointers(tensors: list[Tensor]) -> ctypes.Array:
    return (_P * len(tensors))(*(t.data_ptr() for t in tensors))


def _layout(shapes: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
    rows_cols = torch.tensor(shapes, dtype=torch.int64).reshape(len(shapes), 2).t().contiguous()
    return rows_cols[0], rows_cols[1]


def scalars(grad_factor: Tensor, decay_rate: Tensor | None, values: list[float]) -> Tensor:
    """[grad_factor, decay_rate, *values] as one float64 vector (tensors read in place)."""
    rate = decay_rate if decay_rate is not None else torch.zeros((), dtype=torch.float64)
    head = torch.stack([grad_factor.to(torch.float64), rate.to(torch.float64)])
    return torch.cat([head, torch.tensor(values, dtype=torch.float64)])


def step(
    kind: str,
    compiler: str,
    tensors: list[list[Tensor]],
    shapes: list[tuple[int, int]],
    n_projected: int,
    per_tensor: list[Tensor],
    scalars: Tensor,
    skip: Tensor,
    flags: tuple[int, ...],
    branches: list[Tensor],
) -> None:
    """Run the ``kind`` ("adamp" or "sgdp") kernel over a bucket, in place.

    ``tensors``: [params, grads, *state], each tensor's memory a row-major matrix of
    its entry in ``shapes`` (rows, cols); ``per_tensor``: float64 vectors (N,) (AdamP:
    shift, neg_step; SGDP: neg_step).
    """
    params = tensors[0]
    fn = getattr(library(compiler), f"{kind}_{DTYPES[params[0].dtype]}")
    rows, cols = _layout(shapes)
    per_tensor = [v.to(torch.float64).contiguous() for v in per_tensor]
    skip_byte = skip.to(torch.uint8)
    # a named range: the benchmark counts the calls a step makes with torch.profiler
    with torch.profiler.record_function(f"adamp_torch::{kind}_cpu_kernel"):
        fn(
            len(params),
            *(_pointers(ts) for ts in tensors),
            rows.data_ptr(),
            cols.data_ptr(),
            n_projected,
            *(v.data_ptr() for v in per_tensor),
            scalars.data_ptr(),
            skip_byte.data_ptr(),
            *flags,
            _pointers(branches),  # the first n_projected tensors' branch codes
        )


def flat_rows(t: Tensor, pending: list | None) -> Tensor:
    """An unprojected tensor as a contiguous (1, numel) view; without one, a copy (queued
    in ``pending`` to be copied back, unless it is only read: ``pending`` None)."""
    if t.is_contiguous():
        return t.detach().view(1, t.numel())
    copy = t.detach().contiguous()
    if pending is not None:
        pending.append((t, copy))
    return copy.view(1, t.numel())
