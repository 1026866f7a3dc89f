"""Step time and peak memory of adamp_torch against torch.optim and other AdamP/SGDP codes.

Random tensors with the parameter shapes of ResNet-50 and ViT-B/16 (see
``benchmarks/shapes.py``) and fixed random gradients; only ``optimizer.step()``
is timed. Each (model, optimizer) pair runs in a fresh process, so its peak
memory is the rise of the process's peak resident set (CPU) or of
``torch.cuda.max_memory_allocated`` (GPU) over the parameters and gradients:
the optimizer state plus the step's temporaries.

AdamP is compared with ``torch.optim.AdamW`` (foreach and fused), the authors'
``adamp`` 0.3.0 and pytorch_optimizer's AdamP (if installed); SGDP (momentum
0.9) with ``torch.optim.SGD`` (foreach and fused) and ``adamp.SGDP``. All use
weight decay 1e-2, so the decay pass is in every row.

Run: ``python -m benchmarks --only torch [--quick]``.
"""

from __future__ import annotations

import importlib.util
import multiprocessing as mp
import queue as queue_module
import resource

from benchmarks.common import median_seconds, print_table, write_json
from benchmarks.shapes import MODELS

ADAMP_ROWS = [
    ("adamp_torch.AdamP (foreach)", "AdamW(foreach)"),
    ("adamp_torch.AdamP (single)", "AdamW(foreach)"),
    ("AdamW(foreach)", "AdamW(foreach)"),
    ("AdamW(fused)", "AdamW(foreach)"),
    ("adamp 0.3.0 AdamP", "AdamW(foreach)"),
    ("pytorch_optimizer AdamP", "AdamW(foreach)"),
]
SGDP_ROWS = [
    ("adamp_torch.SGDP (foreach)", "SGD(foreach)"),
    ("adamp_torch.SGDP (single)", "SGD(foreach)"),
    ("SGD(foreach)", "SGD(foreach)"),
    ("SGD(fused)", "SGD(foreach)"),
    ("adamp 0.3.0 SGDP", "SGD(foreach)"),
]
FUSED = {"AdamW(foreach)": "AdamW(fused)", "SGD(foreach)": "SGD(fused)"}
WEIGHT_DECAY = 1e-2


def make_optimizer(name: str, params):
    """The optimizer called ``name`` (a row label above) over ``params``."""
    import adamp_torch
    import torch

    adam = dict(lr=1e-3, weight_decay=WEIGHT_DECAY)
    sgd = dict(lr=0.1, momentum=0.9, weight_decay=WEIGHT_DECAY)
    if name.startswith("adamp_torch.AdamP"):
        return adamp_torch.AdamP(params, **adam, foreach="foreach" in name)
    if name.startswith("adamp_torch.SGDP"):
        return adamp_torch.SGDP(params, **sgd, foreach="foreach" in name)
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


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _measure(model: str, name: str, device: str, warmup: int, repeat: int, queue) -> None:
    import torch

    torch.manual_seed(0)
    params = []
    for shape in MODELS[model]():
        p = torch.nn.Parameter(torch.randn(shape, device=device) * 0.05)
        p.grad = torch.randn(shape, device=device) * 1e-3
        params.append(p)
    optimizer = make_optimizer(name, params)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()

    def step():
        optimizer.step()
        if cuda:
            torch.cuda.synchronize()

    seconds = median_seconds(step, warmup=warmup, repeat=repeat)
    if cuda:
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    queue.put((seconds, peak))


def measure(model: str, name: str, device: str, *, quick: bool) -> tuple[float, float]:
    """(median step seconds, peak extra bytes) in a fresh process."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    warmup, repeat = (1, 3) if quick else (3, 10)
    proc = ctx.Process(target=_measure, args=(model, name, device, warmup, repeat, queue))
    proc.start()
    while True:
        try:
            result = queue.get(timeout=1.0)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                message = f"benchmark of {name} on {model} died ({proc.exitcode})"
                raise RuntimeError(message) from None
    proc.join()
    return result


def available(name: str, device: str) -> bool:
    if name.startswith("pytorch_optimizer"):
        return importlib.util.find_spec("pytorch_optimizer") is not None
    return True


def main(quick: bool = False) -> dict:
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    models = list(MODELS)
    results = []
    for device in devices:
        for model in models:
            n_params = sum(int(torch.Size(s).numel()) for s in MODELS[model]())  # for bytes/param
            for rows in (ADAMP_ROWS, SGDP_ROWS):
                timings = {}
                for name, _ in rows:
                    if available(name, device):
                        timings[name] = measure(model, name, device, quick=quick)
                table = []
                for name, baseline in rows:
                    if name not in timings:
                        continue
                    seconds, peak = timings[name]
                    fused = timings.get(FUSED[baseline])
                    entry = {
                        "device": device,
                        "model": model,
                        "optimizer": name,
                        "params": n_params,
                        "step_ms": seconds * 1e3,
                        "peak_extra_mb": peak / 2**20,
                        "vs_" + baseline: seconds / timings[baseline][0],
                        "vs_fused": seconds / fused[0] if fused else None,
                    }
                    results.append(entry)
                    table.append(
                        [
                            name,
                            seconds * 1e3,
                            seconds / timings[baseline][0],
                            seconds / fused[0] if fused else "-",
                            peak / 2**20,
                        ]
                    )
                print_table(
                    f"{device} {model} ({n_params / 1e6:.1f}M params)",
                    ["optimizer", "step ms", f"x {rows[0][1]}", "x fused", "peak extra MiB"],
                    table,
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
        "results": results,
    }
    path = write_json("torch", payload)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main(quick=False)
