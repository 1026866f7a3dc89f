"""adamp_jax: AdamP and SGDP (Heo et al., ICLR 2021) as optax gradient transformations.

``adamp`` and ``sgdp`` are complete optimizers (``optax.chain`` of the building
block and ``optax.scale_by_learning_rate``); ``scale_by_adamp`` and
``scale_by_sgdp`` are the building blocks, with named states
``ScaleByAdamPState`` / ``ScaleBySGDPState``. The default channel axis is -1
(Flax and Keras kernels: output channels last). ``projection_branches`` reads
which projection branch each parameter took at the last step.
"""

try:  # name the extra to install, not only the missing module
    import jax  # noqa: F401
    import optax  # noqa: F401
except ModuleNotFoundError as error:
    if error.name not in ("jax", "optax"):
        raise
    raise ImportError(
        f"adamp_jax needs JAX and optax ({error.name} is not installed): "
        'pip install "adamp-reference[jax]"'
    ) from error

from adamp_jax.adamp import ScaleByAdamPState, adamp, scale_by_adamp
from adamp_jax.diagnostics import find_projection_state, projection_branches
from adamp_jax.sgdp import ScaleBySGDPState, scale_by_sgdp, sgdp

__all__ = [
    "ScaleByAdamPState",
    "ScaleBySGDPState",
    "adamp",
    "find_projection_state",
    "projection_branches",
    "scale_by_adamp",
    "scale_by_sgdp",
    "sgdp",
]
