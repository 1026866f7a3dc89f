"""The Flax NNX example of docs/jax.md: nnx.Optimizer driving adamp_jax.adamp.

A Linear layer followed by BatchNorm is scale-invariant in its output channels
(Flax kernels are (in, out): channel axis -1, the default), so AdamP projects
it channel-wise; the classifier head is not followed by a normalisation and is
left alone.
"""

from __future__ import annotations

import adamp_jax
import jax
import optax
import pytest
from flax import nnx

from adamp_core import Branch


class Net(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(8, 16, use_bias=False, rngs=rngs)
        self.norm = nnx.BatchNorm(16, rngs=rngs)
        self.head = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x):
        return self.head(nnx.relu(self.norm(self.hidden(x))))


@nnx.jit
def train_step(model, optimizer, x, y):
    def loss_fn(model):
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


@pytest.mark.parametrize(
    "tx",
    [adamp_jax.adamp(1e-2, weight_decay=1e-2), adamp_jax.sgdp(0.1, momentum=0.9)],
    ids=["adamp", "sgdp"],
)
def test_nnx_optimizer_trains_and_reports_branches(tx):
    model = Net(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    before = adamp_jax.projection_branches(optimizer.opt_state)
    assert set(jax.tree.leaves(before)) == {Branch.NONE}
    x = jax.random.normal(jax.random.PRNGKey(1), (64, 8))
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")
    losses = [float(train_step(model, optimizer, x, y)) for _ in range(15)]
    assert losses[-1] < 0.8 * losses[0]
    branches = adamp_jax.projection_branches(optimizer.opt_state)
    assert branches["hidden"]["kernel"] is Branch.CHANNEL
    assert branches["head"]["kernel"] is Branch.NONE
    assert branches["norm"]["scale"] is Branch.NONE  # 1-D
