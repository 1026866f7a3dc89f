// AdamP and SGDP (Heo et al., "AdamP: Slowing Down the Slowdown for Momentum Optimizers on
// Scale-invariant Weights", ICLR 2021) on flat Float64Arrays, as the authors' adamp 0.3.0 does.
// A parameter is { data: Float64Array (row-major), shape: number[], group: number }.
// The algorithm is documented in docs/porting.md ("The algorithm").

export const Branch = Object.freeze({ NONE: 0, CHANNEL: 1, LAYER: 2 });

const product = (xs) => xs.reduce((a, b) => a * b, 1);

function dot(x, y, indices) {
  let sum = 0;
  for (const k of indices) sum += x[k] * y[k];
  return sum;
}

// The channel view: one row per output channel (the index along `axis`), holding every other axis.
function channelRows(shape, axis) {
  const [outer, channels, inner] = [product(shape.slice(0, axis)), shape[axis], product(shape.slice(axis + 1))];
  return Array.from({ length: channels }, (_, c) => {
    const row = new Int32Array(outer * inner);
    for (let o = 0, k = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) row[k++] = (o * channels + c) * inner + i;
    }
    return row;
  });
}

// The layer view: the whole tensor as one row.
const layerRows = (shape) => [Int32Array.from({ length: product(shape) }, (_, k) => k)];

// If the weight looks scale-invariant in a view (max |cos(grad row, weight row)| < delta / sqrt(row
// length)), remove from each row of `update` its component along the weight row, in place.
// Views are tried channel first, then layer; tensors with fewer than two axes are never projected.
function project(weight, grad, update, shape, channelAxis, { delta, eps, wd_ratio }) {
  if (shape.length < 2) return { ratio: 1, branch: Branch.NONE };
  const axis = channelAxis < 0 ? shape.length + channelAxis : channelAxis;
  const views = [
    [Branch.CHANNEL, () => channelRows(shape, axis)],
    [Branch.LAYER, () => layerRows(shape)],
  ];
  for (const [branch, rowsOf] of views) {
    const rows = rowsOf();
    const threshold = delta / Math.sqrt(rows[0].length);
    // |cos| with the two norms clamped separately at eps (torch's cosine_similarity)
    const cosines = rows.map((r) => {
      const norms = Math.max(Math.sqrt(dot(grad, grad, r)), eps) * Math.max(Math.sqrt(dot(weight, weight, r)), eps);
      return Math.abs(dot(grad, weight, r) / norms);
    });
    if (!(Math.max(...cosines) < threshold)) continue;
    for (const r of rows) {
      const norm = Math.sqrt(dot(weight, weight, r)) + eps; // eps added: a zero row stays a no-op
      const radial = dot(weight, update, r) / norm;
      for (const k of r) update[k] -= (weight[k] / norm) * radial;
    }
    return { ratio: wd_ratio, branch };
  }
  return { ratio: 1, branch: Branch.NONE };
}

// Common bookkeeping: parameter groups, per-parameter state, None gradients skipped.
class ProjectedOptimizer {
  constructor(params, groups, { channelAxis = 0, round = (x) => x } = {}) {
    this.params = params;
    this.groups = groups;
    this.channelAxis = channelAxis;
    this.round = round; // rounds a value to the dtype the parameters are stored in
    this.state = params.map((p) => this.initState(p.data.length));
    this.branches = params.map(() => Branch.NONE);
  }

  // grads[i]: a Float64Array, or null when parameter i has no gradient this step.
  step(grads) {
    this.params.forEach((p, i) => {
      if (grads[i] === null) {
        this.branches[i] = Branch.NONE; // skipped: its state, step count included, stays as is
        return;
      }
      const hp = this.groups[p.group];
      const { direction, scale, decay, branch } = this.direction(p, grads[i], this.state[i], hp);
      p.data = p.data.map((w, k) => this.round(w * decay - scale * direction[k]));
      this.branches[i] = branch;
    });
  }
}

export class AdamP extends ProjectedOptimizer {
  initState(size) {
    return { step: 0, exp_avg: new Float64Array(size), exp_avg_sq: new Float64Array(size) };
  }

  direction(p, grad, state, { lr, beta1, beta2, eps, weight_decay, nesterov, ...hp }) {
    const t = ++state.step;
    const [m, v] = [state.exp_avg, state.exp_avg_sq];
    const [bc1, bc2] = [1 - beta1 ** t, 1 - beta2 ** t];
    const direction = new Float64Array(grad.length);
    for (let k = 0; k < grad.length; k++) {
      m[k] = beta1 * m[k] + (1 - beta1) * grad[k];
      v[k] = beta2 * v[k] + (1 - beta2) * (grad[k] * grad[k]);
      const numerator = nesterov ? beta1 * m[k] + (1 - beta1) * grad[k] : m[k];
      direction[k] = numerator / (Math.sqrt(v[k]) / Math.sqrt(bc2) + eps); // eps after the bias correction
    }
    const { ratio, branch } = project(p.data, grad, direction, p.shape, this.channelAxis, { eps, ...hp });
    return { direction, scale: lr / bc1, decay: 1 - lr * weight_decay * ratio, branch };
  }
}

export class SGDP extends ProjectedOptimizer {
  initState(size) {
    return { momentum_buffer: new Float64Array(size) };
  }

  direction(p, grad, state, { lr, momentum, dampening, weight_decay, nesterov, project_buffer, ...hp }) {
    const buffer = state.momentum_buffer;
    for (let k = 0; k < grad.length; k++) buffer[k] = momentum * buffer[k] + (1 - dampening) * grad[k];
    const direction = nesterov ? grad.map((g, k) => g + momentum * buffer[k]) : buffer.slice();
    const { ratio, branch } = project(p.data, grad, direction, p.shape, this.channelAxis, hp);
    if (project_buffer && !nesterov) state.momentum_buffer = direction.slice(); // the projected buffer carries on
    return { direction, scale: lr, decay: 1 - (lr * weight_decay * ratio) / (1 - momentum), branch };
  }
}
