"""Step time and peak memory of adamp_torch against torch.optim and other AdamP/SGDP codes.

Random tensors with the parameter shapes of ResNet-50 and ViT-B/16 (see
``benchmarks/shapes.py``) and fixed random gradients; only ``optimizer.step()``
is timed. The optimizers of one table step the same tensors (each with its own
state) in one process, interleaved round by round in rotating order, so that
load from other processes on the machine hits them alike; the table shows the
median step time and each row's ratio to the authors' ``adamp`` 0.3.0. Peak
memory is measured separately, each optimizer in a fresh process, over two
steps: the rise of the peak resident set (CPU) or of
``torch.cuda.max_memory_allocated`` (GPU) over the parameters and gradients,
that is the optimizer state plus the step's temporaries. On the CPU the
baseline is taken after ``malloc_trim(0)`` (freed heap memory would otherwise
stay resident and be reused by the state without raising the peak) and the
peak is reset then (``/proc/self/clear_refs``). The bytes of the state tensors
are counted too and checked against the analytic size (1 or 2 parameter-sized
buffers); a peak below the state raises instead of being recorded.

AdamP is compared with ``torch.optim.AdamW`` (foreach and fused), the authors'
``adamp`` 0.3.0 and pytorch_optimizer's AdamP (if installed); SGDP (momentum
0.9) with ``torch.optim.SGD`` (foreach and fused) and ``adamp.SGDP``. All use
weight decay 1e-2, so the decay pass is in every row.

The fused rows (``fused=True``) compile their kernels on the first step; the
compile table gives that first step with an empty and with a filled on-disk
Inductor cache (each in a fresh process), and the same for
``torch.compile(opt.step)`` (all paths with ``ADAMP_BENCH_COMPILE_ALL=1``).

Run: ``python -m benchmarks --only torch [--quick]``.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import gc
import importlib.util
import math
import multiprocessing as mp
import os
import queue as queue_module
import statistics
import sys
import time

from benchmarks.common import print_table, write_json
from benchmarks.shapes import MODELS

ADAMP_ROWS = [
    ("adamp_torch.AdamP (fused)", "AdamW(foreach)"),
    ("adamp_torch.AdamP (foreach)", "AdamW(foreach)"),
    ("adamp_torch.AdamP (single)", "AdamW(foreach)"),
    ("AdamW(foreach)", "AdamW(foreach)"),
    ("AdamW(fused)", "AdamW(foreach)"),
    ("adamp 0.3.0 AdamP", "AdamW(foreach)"),
    ("pytorch_optimizer AdamP", "AdamW(foreach)"),
]
SGDP_ROWS = [
    ("adamp_torch.SGDP (fused)", "SGD(foreach)"),
    ("adamp_torch.SGDP (foreach)", "SGD(foreach)"),
    ("adamp_torch.SGDP (single)", "SGD(foreach)"),
    ("SGD(foreach)", "SGD(foreach)"),
    ("SGD(fused)", "SGD(foreach)"),
    ("adamp 0.3.0 SGDP", "SGD(foreach)"),
]
FUSED = {"AdamW(foreach)": "AdamW(fused)", "SGD(foreach)": "SGD(fused)"}
AUTHORS = {"AdamW(foreach)": "adamp 0.3.0 AdamP", "SGD(foreach)": "adamp 0.3.0 SGDP"}
WEIGHT_DECAY = 1e-2


def make_optimizer(name: str, params):
    """The optimizer called ``name`` (a row label above) over ``params``."""
    import adamp_torch
    import torch

    adam = dict(lr=1e-3, weight_decay=WEIGHT_DECAY)
    sgd = dict(lr=0.1, momentum=0.9, weight_decay=WEIGHT_DECAY)
    path = dict(fused=True) if "(fused)" in name else dict(foreach="foreach" in name)
    if name.startswith("adamp_torch.AdamP"):
        return adamp_torch.AdamP(params, **adam, **path)
    if name.startswith("adamp_torch.SGDP"):
        return adamp_torch.SGDP(params, **sgd, **path)
    if name.startswith("AdamW"):
        kind = "fused" if "fused" in name else "foreach"
        return torch.optim.AdamW(params, **adam, **{kind: True})
    if name.startswith("SGD("):
        kind = "fused" if "fused" in name else "foreach"
        return torch.optim.SGD(params, **sgd, **{kind: True})
    if name == "adamp 0.3.0 AdamP":
        import adamp

        return adamp.AdamP(params, **adam)
    if name == "adamp 0.3.0 SGDP":
        import adamp

        return adamp.SGDP(params, **sgd)
    if name == "pytorch_optimizer AdamP":
        import pytorch_optimizer

        return pytorch_optimizer.AdamP(params, **adam)
    raise ValueError(f"unknown optimizer {name!r}")


def _proc_status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def _reset_cpu_peak() -> int:
    """Return freed heap memory to the system, reset VmHWM, and return the RSS then.

    Without the trim, the freed temporaries of the setup stay resident and the
    state reuses them, so the peak does not rise by the state's size. VmHWM, not
    ru_maxrss: ru_maxrss survives exec and cannot be reset.
    """
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    return _proc_status_bytes("VmRSS")


def state_bytes(optimizer) -> int:
    """Bytes of every tensor in the optimizer's state."""
    import torch

    return sum(
        t.numel() * t.element_size()
        for state in optimizer.state.values()
        for t in state.values()
        if isinstance(t, torch.Tensor)
    )


def analytic_state_bytes(name: str, params) -> int:
    """Parameter-sized buffers the optimizer must keep: m and v for Adam, b for SGD."""
    buffers = 1 if "SGD" in name else 2
    return buffers * sum(p.numel() * p.element_size() for p in params)


def _make_params(model: str, device: str):
    import torch

    torch.manual_seed(0)
    params = []
    for shape in MODELS[model]():
        p = torch.nn.Parameter(torch.randn(shape, device=device).mul_(0.05))
        p.grad = torch.randn(shape, device=device).mul_(1e-3)
        params.append(p)
    return params


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_memory(model: str, name: str, device: str, queue) -> None:
    import torch

    if "(fused)" in name:  # compile first: Inductor's own memory is not the step's
        tiny = [torch.nn.Parameter(torch.ones(s, device=device)) for s in ((3, 2, 2), (2,))]
        for p in tiny:
            p.grad = torch.ones_like(p)
        make_optimizer(name, tiny).step()
    params = _make_params(model, device)
    optimizer = make_optimizer(name, params)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _reset_cpu_peak()
    for _ in range(2):
        optimizer.step()
    _sync(device)
    peak = torch.cuda.max_memory_allocated() if cuda else _proc_status_bytes("VmHWM")
    queue.put((peak - base, state_bytes(optimizer), analytic_state_bytes(name, params)))


def peak_memory(model: str, name: str, device: str) -> tuple[int, int]:
    """(peak extra bytes, state bytes) of two steps of ``name`` in a fresh process.

    Raises if the state is not the analytic size or the peak is below the state:
    then the measurement, not the optimizer, is wrong.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_memory, args=(model, name, device, queue))
    proc.start()
    while True:
        try:
            peak, state, analytic = queue.get(timeout=1.0)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                message = f"memory benchmark of {name} on {model} died ({proc.exitcode})"
                raise RuntimeError(message) from None
    proc.join()
    # besides the buffers: 0-dim step counters and projection codes, < 16 B per tensor
    if not analytic <= state <= analytic + 2**20:
        raise RuntimeError(f"{name} on {model}: state {state} B, analytic {analytic} B")
    if peak < state:
        raise RuntimeError(f"{name} on {model}: measured peak {peak} B < state {state} B")
    return peak, state


# operators that only make a view (no data moved): not counted as calls
VIEW_OPS = frozenset(
    f"aten::{op}"
    for op in (
        "view", "detach", "alias", "as_strided", "permute", "expand", "select", "slice",
        "narrow", "split", "split_with_sizes", "unbind", "unsqueeze", "squeeze", "t",
        "reshape", "_reshape_alias", "unflatten", "flatten",
    )
)  # fmt: skip


@contextlib.contextmanager
def _stderr_closed():
    """File descriptor 2 points at /dev/null (C++ logging included) inside the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def top_level_call_names(optimizer) -> collections.Counter:
    """Compute calls one step makes at its top level (torch.profiler), by name.

    Each aten operator that is not a view (a foreach or fused one counts once),
    each compiled Inductor graph and each call of this project's CPU kernel; not
    the operators inside those. On CUDA each is at least one kernel launch.
    """
    from torch.profiler import profile

    with _stderr_closed(), profile() as prof:  # the profiler logs its start and stop there
        optimizer.step()
    events = prof.events()
    steps = {id(e) for e in events if e.name.startswith("Optimizer.step#")}
    return collections.Counter(
        e.name
        for e in events
        if e.cpu_parent is not None and id(e.cpu_parent) in steps and e.name not in VIEW_OPS
    )


def top_level_calls(optimizer) -> int:
    """How many calls :func:`top_level_call_names` counts."""
    return sum(top_level_call_names(optimizer).values())


def step_times(model: str, names: list[str], device: str, *, quick: bool) -> dict:
    """Per optimizer, the step times of interleaved rounds (seconds), and under
    ``"calls"`` the top-level calls of one step (after the timed rounds)."""
    params = _make_params(model, device)
    optimizers = {name: make_optimizer(name, params) for name in names}
    warmup, rounds = (1, 3) if quick else (3, 15)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(warmup + rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            _sync(device)
            start = time.perf_counter()
            optimizers[name].step()
            _sync(device)
            if r >= warmup:
                samples[name].append(time.perf_counter() - start)
    samples["calls"] = {name: top_level_calls(optimizers[name]) for name in names}
    return samples


COMPILED = ["adamp_torch.AdamP (fused)", "adamp_torch.SGDP (fused)"]
# torch.compile(opt.step) of the other paths costs minutes each on a 2-core CPU
# (AdamP foreach: about 4 minutes): opt in with ADAMP_BENCH_COMPILE_ALL=1
COMPILED_ALL = [
    "adamp_torch.AdamP (foreach)",
    "adamp_torch.AdamP (single)",
    "AdamW(foreach)",
    "AdamW(fused)",
    "adamp_torch.SGDP (foreach)",
    "SGD(foreach)",
    "SGD(fused)",
]


def _first_steps(model, name, device, compile_step, steps, queue) -> None:
    import torch

    params = _make_params(model, device)
    optimizer = make_optimizer(name, params)
    step = torch.compile(optimizer.step) if compile_step else optimizer.step
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    queue.put(times)


def first_steps(model, name, device, *, compile_step, cache_dir, steps) -> list[float]:
    """Step times from a fresh process whose Inductor cache is ``cache_dir``."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    saved = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache_dir  # inherited by the spawned process
    try:
        args = (model, name, device, compile_step, steps, queue)
        proc = ctx.Process(target=_first_steps, args=args)
        proc.start()
    finally:
        if saved is None:
            del os.environ["TORCHINDUCTOR_CACHE_DIR"]
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = saved
    while True:
        try:
            times = queue.get(timeout=1.0)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                raise RuntimeError(f"compile benchmark of {name} died ({proc.exitcode})") from None
    proc.join()
    return times


def compile_costs(model: str, device: str, *, quick: bool) -> list[dict]:
    """Per compiled path: first step with an empty (cold) and a filled (warm) on-disk
    Inductor cache, each in a fresh process, and the median of the steps after."""
    import tempfile

    names = COMPILED + (COMPILED_ALL if os.environ.get("ADAMP_BENCH_COMPILE_ALL") else [])
    steps = 4 if quick else 8
    rows = []
    for name, compile_step in [(n, False) for n in COMPILED] + [(n, True) for n in names]:
        with tempfile.TemporaryDirectory(prefix="adamp-bench-inductor-") as cache_dir:
            kw = dict(compile_step=compile_step, cache_dir=cache_dir, steps=steps)
            cold = first_steps(model, name, device, **kw)
            warm = first_steps(model, name, device, **kw)
        label = f"torch.compile({name}.step)" if compile_step else name
        rows.append(
            {
                "device": device,
                "model": model,
                "optimizer": label,
                "cold_first_step_s": cold[0],
                "warm_first_step_s": warm[0],
                "second_step_s": warm[1],
                "step_ms_median": statistics.median(cold[2:] + warm[2:]) * 1e3,
            }
        )
    return rows


def available(name: str, device: str) -> bool:
    if name.startswith("pytorch_optimizer"):
        return importlib.util.find_spec("pytorch_optimizer") is not None
    return True


def _row(model, name, baseline, samples, timings, device, n_params, memory):
    """One table row: the JSON entry and the printed cells (``memory``: peak, state bytes)."""
    seconds = timings[name]
    ratios = {
        key: seconds / timings[ref] if ref in timings else None
        for key, ref in (
            ("vs_" + baseline, baseline),
            ("vs_fused", FUSED[baseline]),
            ("vs_adamp_0.3.0", AUTHORS[baseline]),
        )
    }
    peak, state = memory
    entry = {
        "device": device,
        "model": model,
        "optimizer": name,
        "params": n_params,
        "step_ms_median": seconds * 1e3,
        "step_ms_min": min(samples[name]) * 1e3,
        "rounds": len(samples[name]),
        "peak_extra_mb": peak / 2**20,
        "state_mb": state / 2**20,
        "top_level_calls": samples["calls"][name],
        **ratios,
    }
    cells = [name, seconds * 1e3, min(samples[name]) * 1e3]
    cells += ["-" if r is None else r for r in ratios.values()]
    return entry, [*cells, samples["calls"][name], peak / 2**20, state / 2**20]


def main(quick: bool = False) -> dict:
    import torch

    load_start = os.getloadavg()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    models = list(MODELS)
    results = []
    for device in devices:
        for model in models:
            n_params = sum(math.prod(s) for s in MODELS[model]())
            for rows in (ADAMP_ROWS, SGDP_ROWS):
                names = [name for name, _ in rows if available(name, device)]
                samples = step_times(model, names, device, quick=quick)
                timings = {name: statistics.median(samples[name]) for name in names}
                table = [
                    _row(
                        model, name, baseline, samples, timings, device, n_params,
                        peak_memory(model, name, device),
                    )
                    for name, baseline in rows
                    if name in timings
                ]  # fmt: skip
                results += [entry for entry, _ in table]
                print_table(
                    f"{device} {model} ({n_params / 1e6:.1f}M params)",
                    [
                        "optimizer",
                        "median ms",
                        "min ms",
                        f"x {rows[0][1]}",
                        "x fused",
                        "x adamp 0.3.0",
                        "calls/step",
                        "peak extra MiB",
                        "state MiB",
                    ],
                    [cells for _, cells in table],
                )
        compiled = compile_costs("resnet50", device, quick=quick)
        results += compiled
        print_table(
            f"{device} resnet50: compile cost (fresh process each; cold = empty Inductor cache)",
            ["path", "cold 1st step s", "warm 1st step s", "2nd step s", "median ms"],
            [
                [
                    r["optimizer"],
                    r["cold_first_step_s"],
                    r["warm_first_step_s"],
                    r["second_step_s"],
                    r["step_ms_median"],
                ]
                for r in compiled
            ],
        )
    versions = {"torch": torch.__version__}
    for module in ("adamp", "pytorch_optimizer"):
        if importlib.util.find_spec(module) is not None:
            from importlib.metadata import version

            versions[module] = version(module)
    payload = {
        "versions": versions,
        "threads": torch.get_num_threads(),
        "quick": quick,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "results": results,
    }
    path = write_json("torch", payload)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main(quick=False)
