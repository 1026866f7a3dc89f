"""AdamP and SGDP written the way a Keras user ports them: keras.ops, Python-level
hyperparameter checks (``weight_decay > 0``), one optimizer-wide step counter and
every scalar cast to the variable's dtype. Used by the conformance meta-test: the
suite's own ``keras_adapter`` must hand it hyperparameters it accepts (no error
may come from the suite)."""

import math

import keras
from keras import ops


def _check(name, value):
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _views(x):
    """Channel view (output channels, last axis, as rows) and layer view, of a Keras weight."""
    channels = ops.transpose(ops.reshape(x, (-1, x.shape[-1])))
    return channels, ops.reshape(x, (1, -1))


def project(param, grad, update, delta, wd_ratio, eps):
    """Remove the radial component of ``update`` if ``grad`` is nearly orthogonal to ``param``."""
    if len(param.shape) < 2:
        return update, 1.0
    out, ratio = update, ops.cast(1.0, param.dtype)
    fired_before = ops.cast(False, "bool")
    for p_rows, g_rows in zip(_views(param), _views(grad), strict=True):
        p_norm = ops.maximum(ops.sqrt(ops.sum(p_rows * p_rows, axis=1)), eps)
        g_norm = ops.maximum(ops.sqrt(ops.sum(g_rows * g_rows, axis=1)), eps)
        cos = ops.abs(ops.sum(p_rows * g_rows, axis=1)) / (p_norm * g_norm)
        fires = ops.logical_and(
            ops.max(cos) < delta / math.sqrt(p_rows.shape[1]), ops.logical_not(fired_before)
        )
        unit = p_rows / ops.expand_dims(ops.sqrt(ops.sum(p_rows * p_rows, axis=1)) + eps, 1)
        u_rows = ops.reshape(update, p_rows.shape) if p_rows.shape[0] == 1 else None
        if u_rows is None:
            u_rows = ops.transpose(ops.reshape(update, (-1, update.shape[-1])))
        projected = u_rows - unit * ops.sum(unit * u_rows, axis=1, keepdims=True)
        if p_rows.shape[0] == 1:
            projected = ops.reshape(projected, update.shape)
        else:
            projected = ops.reshape(ops.transpose(projected), update.shape)
        out = ops.where(fires, projected, out)
        ratio = ops.where(fires, ops.cast(wd_ratio, param.dtype), ratio)
        fired_before = ops.logical_or(fired_before, fires)
    return out, ratio


class PlainAdamP(keras.optimizers.Optimizer):
    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 weight_decay=0.0, delta=0.1, wd_ratio=0.1, nesterov=False, name="plain_adamp",
                 **kwargs):  # fmt: skip
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.decay = _check("weight_decay", weight_decay)
        self.delta, self.wd_ratio, self.nesterov = delta, wd_ratio, nesterov

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.m = [self.add_variable_from_reference(v, "m") for v in var_list]
        self.v = [self.add_variable_from_reference(v, "v") for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        b1, b2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        eps = ops.cast(self.epsilon, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        m, v = self.m[index], self.v[index]
        grad = ops.cast(gradient, dtype)
        self.assign(m, b1 * m + (1 - b1) * grad)
        self.assign(v, b2 * v + (1 - b2) * grad * grad)
        bc1, bc2 = 1 - ops.power(b1, step), 1 - ops.power(b2, step)
        denom = ops.sqrt(v) / ops.sqrt(bc2) + eps
        numerator = b1 * m + (1 - b1) * grad if self.nesterov else m
        update, ratio = project(variable, grad, numerator / denom, self.delta, self.wd_ratio, eps)
        new = variable
        if self.decay > 0:
            new = new * (1 - lr * self.decay * ratio)
        self.assign(variable, new - lr / bc1 * update)


class PlainSGDP(keras.optimizers.Optimizer):
    def __init__(self, learning_rate=0.01, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, epsilon=1e-8, delta=0.1, wd_ratio=0.1, name="plain_sgdp",
                 **kwargs):  # fmt: skip
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum, self.dampening, self.nesterov = momentum, dampening, nesterov
        self.decay = _check("weight_decay", weight_decay)
        self.epsilon, self.delta, self.wd_ratio = epsilon, delta, wd_ratio

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.buf = [self.add_variable_from_reference(v, "buf") for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        mu = ops.cast(self.momentum, dtype)
        buf = self.buf[self._get_variable_index(variable)]
        grad = ops.cast(gradient, dtype)
        new_buf = mu * buf + (1 - ops.cast(self.dampening, dtype)) * grad
        self.assign(buf, new_buf)
        direction = grad + mu * new_buf if self.nesterov else new_buf
        eps = ops.cast(self.epsilon, dtype)
        update, ratio = project(variable, grad, direction, self.delta, self.wd_ratio, eps)
        if not self.nesterov:
            self.assign(buf, update)
        new = variable
        if self.decay > 0:
            new = new * (1 - lr * self.decay * ratio / (1 - mu))
        self.assign(variable, new - lr * update)
