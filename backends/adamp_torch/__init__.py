"""adamp_torch: AdamP and SGDP (Heo et al., ICLR 2021) as torch.optim optimizers.

A drop-in replacement for the authors' ``adamp`` 0.3.0 (same arguments, defaults
and results; its checkpoints load) with a multi-tensor path, no host
synchronisation in ``step``, ``torch.compile(fullgraph=True)`` support, FSDP2
(DTensor, Shard(0)) support and per-parameter projection diagnostics
(``optimizer.projection_branches()``).
"""

try:  # name the extra to install, not only the missing module
    import torch  # noqa: F401
except ModuleNotFoundError as error:
    if error.name != "torch":
        raise
    raise ImportError(
        f"adamp_torch needs PyTorch ({error.name} is not installed): "
        'pip install "adamp-reference[torch]"'
    ) from error

from adamp_torch.adamp import AdamP
from adamp_torch.sgdp import SGDP

__all__ = ["SGDP", "AdamP"]
