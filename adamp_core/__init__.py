"""adamp_core: the NumPy reference specification of AdamP and SGDP.

Heo et al., "AdamP: Slowing Down the Slowdown for Momentum Optimizers on
Scale-invariant Weights", ICLR 2021 (arXiv:2006.08217). This package is the
ground truth every backend and port is checked against: it reproduces the
authors' ``adamp`` 0.3.0 exactly, in float64, bit-reproducibly. It imports no
deep-learning framework.
"""

from adamp_core.adamp import AdamPState, StepResult, adam_direction, adamp_init, adamp_step
from adamp_core.multi import (
    OPTIMIZERS,
    MultiStep,
    Optimizer,
    get_optimizer,
    init_states,
    step_params,
)
from adamp_core.projection import (
    Branch,
    Projection,
    channel_rows,
    cosine_similarity,
    from_rows,
    normalise_channel_axis,
    projection,
    remove_radial,
    view_rows,
)
from adamp_core.sgdp import SGDPState, sgdp_init, sgdp_step
from adamp_core.validation import (
    UNCHECKED,
    check_bool,
    check_in_range,
    check_param_dtype,
    validate_adamp,
    validate_sgdp,
)

__version__ = "0.1.0"

__all__ = [
    "OPTIMIZERS",
    "UNCHECKED",
    "AdamPState",
    "Branch",
    "MultiStep",
    "Optimizer",
    "Projection",
    "SGDPState",
    "StepResult",
    "adam_direction",
    "adamp_init",
    "adamp_step",
    "channel_rows",
    "check_bool",
    "check_in_range",
    "check_param_dtype",
    "cosine_similarity",
    "from_rows",
    "get_optimizer",
    "init_states",
    "normalise_channel_axis",
    "projection",
    "remove_radial",
    "sgdp_init",
    "sgdp_step",
    "step_params",
    "validate_adamp",
    "validate_sgdp",
    "view_rows",
]
