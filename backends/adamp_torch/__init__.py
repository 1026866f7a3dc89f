"""adamp_torch: AdamP and SGDP (Heo et al., ICLR 2021) as torch.optim optimizers.

A drop-in replacement for the authors' ``adamp`` 0.3.0 (same arguments, defaults
and results; its checkpoints load) with a multi-tensor path, no host
synchronisation in ``step``, ``torch.compile(fullgraph=True)`` support, FSDP2
(DTensor, Shard(0)) support and per-parameter projection diagnostics
(``optimizer.projection_branches()``).
"""

from adamp_torch.adamp import AdamP
from adamp_torch.sgdp import SGDP

__all__ = ["SGDP", "AdamP"]
