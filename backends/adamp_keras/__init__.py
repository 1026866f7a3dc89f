"""adamp_keras: AdamP and SGDP (Heo et al., ICLR 2021) as Keras 3 optimizers.

``model.compile(optimizer=adamp_keras.AdamP())`` on the tensorflow, jax and torch
Keras backends; after ``import adamp_keras`` also ``optimizer="adamp"`` /
``"sgdp"`` (or ``"AdamP"`` / ``"SGDP"``), the way Keras's built-in optimizers
are named. Written in ``keras.ops``, with a multi-tensor step on the torch
backend and ``adamp_jax``'s step math on the JAX backend; Keras layout (output
channels on the last axis, ``channel_axis=-1``); decoupled weight decay applied
once, inside the update; registered as Keras-serializable
(``keras.saving.load_model`` needs no ``custom_objects``); per-variable
projection diagnostics through ``optimizer.projection_branches()``.
"""

try:  # name the extra to install, not only the missing module
    import keras
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

# keras.optimizers.get (what compile calls on a string) builds the class found
# under the string in the global custom objects; register_keras_serializable
# files these classes only as "adamp_keras>AdamP" / "adamp_keras>SGDP".
keras.saving.get_custom_objects().update(
    {"adamp": AdamP, "AdamP": AdamP, "sgdp": SGDP, "SGDP": SGDP}
)
