"""adamp_keras: AdamP and SGDP (Heo et al., ICLR 2021) as Keras 3 optimizers.

``model.compile(optimizer=adamp_keras.AdamP())`` on the tensorflow, jax and torch
Keras backends. Written only in ``keras.ops``; Keras layout (output channels on
the last axis, ``channel_axis=-1``); decoupled weight decay applied once, inside
the update; registered as Keras-serializable (``keras.saving.load_model`` needs
no ``custom_objects``); per-variable projection diagnostics through
``optimizer.projection_branches()``.
"""

try:  # name the extra to install, not only the missing module
    import keras  # noqa: F401
except ModuleNotFoundError as error:
    if error.name not in ("keras", "tensorflow"):  # tensorflow: the default Keras backend
        raise
    raise ImportError(
        f"adamp_keras needs Keras 3 ({error.name} is not installed): "
        'pip install "adamp-reference[keras]"'
    ) from error

from adamp_keras.adamp import AdamP
from adamp_keras.sgdp import SGDP

__all__ = ["SGDP", "AdamP"]
