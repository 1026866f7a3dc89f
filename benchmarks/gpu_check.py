"""The GPU benchmarks of the three backends in one run: one table, one JSON file.

Called by ``benchmarks/gpu_check.sh`` after the CUDA tests. On a CUDA machine:

- torch (ResNet-50 and ViT-B/16 shapes): AdamP/SGDP fused and foreach against
  ``torch.optim.AdamW(fused=True)`` / ``SGD(fused=True)`` and the authors' adamp
  0.3.0, interleaved rounds, median step time; peak extra memory of the fused rows;
- adamp_jax against ``optax.adamw`` (``benchmarks/bench_jax.py``, quick);
- the Keras optimizer step (``benchmarks/bench_keras.py``, quick).

The JAX and Keras suites run as they are (``python -m benchmarks --only ...``) in
subprocesses; their CPU result files are kept and their GPU output is moved under
``benchmarks/results/gpu/``. Everything lands in ``benchmarks/results/gpu_check.json``.

``--cpu``: a smoke run of this script on the CPU (tiny shapes, few rounds, the
JAX/Keras suites only imported), to check the script where there is no GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from benchmarks import bench_torch
from benchmarks.common import RESULTS_DIR, print_table, write_json
from benchmarks.shapes import MODELS

TORCH_ROWS = {
    "adamp": [
        "adamp_torch.AdamP (fused)",
        "adamp_torch.AdamP (foreach)",
        "AdamW(fused)",
        "adamp 0.3.0 AdamP",
    ],
    "sgdp": [
        "adamp_torch.SGDP (fused)",
        "adamp_torch.SGDP (foreach)",
        "SGD(fused)",
        "adamp 0.3.0 SGDP",
    ],
}
BASELINES = {
    "adamp": ("AdamW(fused)", "adamp 0.3.0 AdamP"),
    "sgdp": ("SGD(fused)", "adamp 0.3.0 SGDP"),
}
MEMORY_ROWS = {
    "adamp_torch.AdamP (fused)",
    "AdamW(fused)",
    "adamp_torch.SGDP (fused)",
    "SGD(fused)",
}


def torch_rows(device: str, models: list[str], *, quick: bool, memory: bool) -> list[dict]:
    rows = []
    for model in models:
        for kind, names in TORCH_ROWS.items():
            samples = bench_torch.step_times(model, names, device, quick=quick)
            ms = {name: statistics.median(samples[name]) * 1e3 for name in names}
            fused, authors = BASELINES[kind]
            for name in names:
                peak = None
                if memory and name in MEMORY_ROWS:
                    peak = bench_torch.peak_memory(model, name, device)[0] / 2**20
                rows.append(
                    {
                        "suite": "torch",
                        "device": device,
                        "model": model,
                        "optimizer": name,
                        "step_ms": ms[name],
                        "vs_fused": ms[name] / ms[fused],
                        "speedup_vs_adamp_0.3.0": ms[authors] / ms[name],
                        "peak_extra_mib": peak,
                    }
                )
    return rows


def _suite(name: str, *, quick: bool) -> dict | None:
    """Run ``python -m benchmarks --only name`` keeping the CPU result file in place."""
    path = RESULTS_DIR / f"{name}.json"
    backup = path.with_suffix(".json.cpu-backup")
    if path.exists():
        shutil.copy2(path, backup)
    cmd = [sys.executable, "-m", "benchmarks", "--only", name, *(["--quick"] if quick else [])]
    try:
        done = subprocess.run(cmd, check=False, timeout=240)
        if done.returncode != 0 or not path.exists():
            print(f"{name} suite failed (exit {done.returncode})", file=sys.stderr)
            return None
        gpu_dir = RESULTS_DIR / "gpu"
        gpu_dir.mkdir(exist_ok=True)
        shutil.copy2(path, gpu_dir / f"{name}.json")
        return json.loads(path.read_text())
    except subprocess.TimeoutExpired:
        print(f"{name} suite ran past 240 s", file=sys.stderr)
        return None
    finally:
        if backup.exists():
            shutil.move(backup, path)


def jax_rows(payload: dict | None) -> list[dict]:
    if payload is None:
        return []
    device = payload.get("device", "?")
    return [
        {
            "suite": "jax",
            "device": device,
            "model": r["model"],
            "optimizer": r["pair"],
            "step_ms": r["ours_ms"],
            "vs_fused": r["ratio"],
        }
        for r in payload["results"]
    ]


def keras_rows(payload: dict | None) -> list[dict]:
    """Rows of bench_keras's JSON: the optimizer step alone per model, then the fit."""
    if payload is None:
        return []
    rows = []
    runs = [(r, r["model"]) for r in payload.get("step_alone", [])]
    runs += [(r, f"fit, {r['trainable_parameters'] / 1e6:.1f}M") for r in payload.get("fit", [])]
    for r, model in runs:
        per_step = r.get("ms_per_step", {})
        for opt, ms in per_step.items():
            base = per_step.get("AdamW" if opt.startswith("Adam") else "SGD")
            rows.append(
                {
                    "suite": f"keras-{r.get('backend')}",
                    "device": r.get("device", "?"),
                    "model": model,
                    "optimizer": opt,
                    "step_ms": ms,
                    "vs_fused": ms / base if base else None,
                }
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="smoke run on the CPU")
    args = parser.parse_args()
    import torch

    start = time.perf_counter()
    if args.cpu:
        MODELS["tiny"] = lambda: [(8, 4, 3, 3), (8,), (10, 8), (10,)]
        rows = torch_rows("cpu", ["tiny"], quick=True, memory=False)
        for module in ("benchmarks.bench_jax", "benchmarks.bench_keras"):
            found = subprocess.run([sys.executable, "-c", f"import {module}"], check=False)
            print(f"{module}: {'importable' if found.returncode == 0 else 'IMPORT FAILED'}")
    else:
        if not torch.cuda.is_available():
            print("no CUDA GPU visible to torch; use --cpu for a smoke run", file=sys.stderr)
            return 2
        rows = torch_rows("cuda", list(MODELS), quick=False, memory=True)
        rows += jax_rows(_suite("jax", quick=True))
        rows += keras_rows(_suite("keras", quick=True))
    print_table(
        "GPU check; vs_fused: ratio to fused AdamW/SGD (torch), optax.adamw "
        "(jax), Keras AdamW/SGD (keras)",
        [
            "suite",
            "device",
            "model",
            "optimizer",
            "step ms",
            "x fused",
            "x faster than 0.3.0",
            "peak MiB",
        ],
        [
            [
                r["suite"],
                r["device"],
                r["model"],
                r["optimizer"],
                r["step_ms"],
                "-" if r.get("vs_fused") is None else r["vs_fused"],
                "-" if r.get("speedup_vs_adamp_0.3.0") is None else r["speedup_vs_adamp_0.3.0"],
                "-" if r.get("peak_extra_mib") is None else r["peak_extra_mib"],
            ]
            for r in rows
        ],
    )
    name = "gpu_check_cpu_smoke" if args.cpu else "gpu_check"
    payload = {
        "torch": torch.__version__,
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "load_average": os.getloadavg(),
        "seconds": time.perf_counter() - start,
        "results": rows,
    }
    print(f"\nwrote {write_json(name, payload)} in {payload['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
