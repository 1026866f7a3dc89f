"""adamp_keras: AdamP and SGDP (Heo et al., ICLR 2021) as Keras 3 optimizers.

``model.compile(optimizer=adamp_keras.AdamP())`` on the tensorflow, jax and torch
Keras backends. Written only in ``keras.ops``; Keras layout (output channels on
the last axis, ``channel_axis=-1``); decoupled weight decay applied once, inside
the update; registered as Keras-serializable (``keras.saving.load_model`` needs
no ``custom_objects``); per-variable projection diagnostics through
``optimizer.projection_branches()``.
"""

from adamp_keras.adamp import AdamP
from adamp_keras.sgdp import SGDP

__all__ = ["SGDP", "AdamP"]
