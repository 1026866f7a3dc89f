// The fused AdamP and SGDP step on the CPU: one call per bucket of tensors.
//
// The same math as adamp_torch/_fused.py (and adamp_core), written as two passes
// over each tensor's (rows, cols) view in memory order:
//   pass 1 reads w, g and the state, computes the direction u on the fly and
//          the row statistics g·g, w·w, g·w, w·u (nothing is written);
//   the decision (channel view, else layer view, else none) and the per-row
//          scale k_r of w follow from those statistics;
//   pass 2 recomputes u and writes the state and w <- k_r·w + neg_step·u.
// 16-bit tensors are computed in float32 and rounded once when written.
// Tensors after the first n_projected (biases, norms: never projected) take pass 2 only.
// Compiled at first use by adamp_torch/_cpu_kernel.py; called through ctypes with
// arrays of pointers, so the number of calls does not grow with the tensors.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

struct BF16 {
  uint16_t bits;
};

inline float load(const float* p, int64_t i) { return p[i]; }
inline double load(const double* p, int64_t i) { return p[i]; }
inline float load(const _Float16* p, int64_t i) { return static_cast<float>(p[i]); }
inline float load(const BF16* p, int64_t i) {
  uint32_t u = static_cast<uint32_t>(p[i].bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline void store(float* p, int64_t i, float x) { p[i] = x; }
inline void store(double* p, int64_t i, double x) { p[i] = x; }
inline void store(_Float16* p, int64_t i, float x) { p[i] = static_cast<_Float16>(x); }
inline void store(BF16* p, int64_t i, float x) {  // round to nearest even, NaN kept quiet
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if (std::isnan(x)) {
    p[i].bits = static_cast<uint16_t>((u >> 16) | 0x40);
    return;
  }
  u += 0x7FFF + ((u >> 16) & 1);
  p[i].bits = static_cast<uint16_t>(u >> 16);
}

// Per-bucket scalars, in the compute type C.
template <typename C>
struct Common {
  C grad_factor;  // ±1/grad_scale (- under maximize)
  C decay_rate;   // lr·λ (AdamP) or lr·λ/(1-μ) (SGDP); 0 without weight decay
  double delta;  // the thresholds are computed in double
  C wd_ratio, eps;
  bool skip;     // GradScaler found an inf: write nothing
  int threads;  // torch.get_num_threads(), as Inductor's kernels take it
};

// The decision of one tensor from its row statistics (g·g, w·w, g·w, w·u of row r at
// stats[4r .. 4r+3]). Writes the per-row coefficient into coef and returns the branch code.
template <typename C>
int64_t decide(const C* stats, int64_t rows, int64_t cols, const Common<C>& k, C* coef,
               C* ratio) {
  C max_cos = -INFINITY;
  C lgg = 0, lww = 0, lgw = 0, lwu = 0;
  bool nan_cos = false;
  for (int64_t r = 0; r < rows; ++r) {
    const C gg = stats[4 * r], ww = stats[4 * r + 1], gw = stats[4 * r + 2];
    C cos = std::fabs(gw) / (std::fmax(std::sqrt(gg), k.eps) * std::fmax(std::sqrt(ww), k.eps));
    if (std::isnan(cos)) nan_cos = true;
    else if (cos > max_cos) max_cos = cos;
    lgg += gg;
    lww += ww;
    lgw += gw;
    lwu += stats[4 * r + 3];
  }
  C l_norm = std::sqrt(lww);
  C cos_layer = std::fabs(lgw) / (std::fmax(std::sqrt(lgg), k.eps) * std::fmax(l_norm, k.eps));
  // thresholds δ/sqrt(d) computed in double and rounded, as the batched decision does
  C channel_thr = static_cast<C>(k.delta / std::sqrt(double(cols)));
  C layer_thr = static_cast<C>(k.delta / std::sqrt(double(rows * cols)));
  bool channel = !nan_cos && max_cos < channel_thr;
  bool layer = !channel && cos_layer < layer_thr;
  C layer_coef = lwu / ((l_norm + k.eps) * (l_norm + k.eps));
  for (int64_t r = 0; r < rows; ++r) {
    C w_norm = std::sqrt(stats[4 * r + 1]);
    C row_coef = stats[4 * r + 3] / ((w_norm + k.eps) * (w_norm + k.eps));
    coef[r] = channel ? row_coef : layer ? layer_coef : C(0);
  }
  *ratio = (channel || layer) ? k.wd_ratio : C(1);
  return int64_t(channel) + 2 * int64_t(layer);
}

// torch.lerp's formula (exact at both ends); which side is known per call (LowWeight: w < 0.5),
// so the inner loops carry no branch (a runtime choice there stops GCC vectorising them)
template <bool LowWeight, typename C>
inline C lerp(C a, C b, C w) {
  return LowWeight ? a + w * (b - a) : b - (b - a) * (C(1) - w);
}

template <typename C>
struct AdamScalars {
  C c1, beta2, c2;  // 1-β₁, β₂, 1-β₂
};

// u for one element; m_new, v_new are the new moments.
template <bool Nesterov, bool LowWeight, typename C>
inline C adam_direction(C g, C m, C v, C shift, const AdamScalars<C>& a, C& m_new, C& v_new) {
  m_new = lerp<LowWeight>(m, g, a.c1);
  v_new = v * a.beta2 + a.c2 * g * g;
  C num = Nesterov ? lerp<LowWeight>(m_new, g, a.c1) : m_new;
  return num / (std::sqrt(v_new) + shift);
}

// Row statistics g·g, w·w, g·w, w·u of one row of n elements (reads only).
template <bool Nesterov, bool LowWeight, typename S, typename C>
void adam_row_stats(const S* __restrict__ w, const S* __restrict__ g, const S* __restrict__ m,
                    const S* __restrict__ v, int64_t n, C shift, C grad_factor,
                    AdamScalars<C> a, C* out) {
  C gg = 0, ww = 0, gw = 0, wu = 0;
#pragma omp simd reduction(+ : gg, ww, gw, wu)
  for (int64_t j = 0; j < n; ++j) {
    C gf = C(load(g, j)) * grad_factor, wf = load(w, j), mn, vn;
    C u = adam_direction<Nesterov, LowWeight, C>(gf, load(m, j), load(v, j), shift, a, mn, vn);
    gg += gf * gf;
    ww += wf * wf;
    gw += gf * wf;
    wu += wf * u;
  }
  out[0] = gg;
  out[1] = ww;
  out[2] = gw;
  out[3] = wu;
}

// w <- scale·w + neg_step·u and the new moments, over one row of n elements.
template <bool Nesterov, bool LowWeight, typename S, typename C>
void adam_row_apply(S* __restrict__ w, const S* __restrict__ g, S* __restrict__ m,
                    S* __restrict__ v, int64_t n, C shift, C grad_factor, AdamScalars<C> a,
                    C scale, C neg_step) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    C gf = C(load(g, j)) * grad_factor, mn, vn;
    C u = adam_direction<Nesterov, LowWeight, C>(gf, load(m, j), load(v, j), shift, a, mn, vn);
    store(m, j, mn);
    store(v, j, vn);
    store(w, j, C(load(w, j)) * scale + neg_step * u);
  }
}

template <bool Nesterov, bool LowWeight, typename S, typename C>
void adamp_tensor(S* w, const S* g, S* m, S* v, int64_t rows, int64_t cols, bool projected,
                  C shift, C neg_step, const AdamScalars<C>& a, const Common<C>& k,
                  int64_t* branch) {
  std::vector<C> stats(projected ? 4 * rows : 0), coef(rows, C(0));
  C ratio = 1;
  const bool parallel = rows * cols >= 32768;
  const C gfac = k.grad_factor;
  if (projected) {
#pragma omp parallel for if (parallel) num_threads(k.threads) schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t o = r * cols;
      adam_row_stats<Nesterov, LowWeight, S, C>(w + o, g + o, m + o, v + o, cols, shift, gfac,
                                                a, &stats[4 * r]);
    }
    int64_t code = decide<C>(stats.data(), rows, cols, k, coef.data(), &ratio);
    if (!k.skip) *branch = code;
  }
  if (k.skip) return;
  const C decay = C(1) - k.decay_rate * ratio;
#pragma omp parallel for if (parallel) num_threads(k.threads) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t o = r * cols;
    adam_row_apply<Nesterov, LowWeight, S, C>(w + o, g + o, m + o, v + o, cols, shift, gfac, a,
                                              decay - neg_step * coef[r], neg_step);
  }
}

template <typename C>
struct SgdScalars {
  C momentum, undamped;  // μ, 1-τ
};

template <bool Nesterov, typename C>
inline C sgd_direction(C g, C b, const SgdScalars<C>& s, C& b_new) {
  b_new = b * s.momentum + s.undamped * g;
  return Nesterov ? g + s.momentum * b_new : b_new;
}

template <bool Nesterov, typename S, typename C>
void sgd_row_stats(const S* __restrict__ w, const S* __restrict__ g, const S* __restrict__ b,
                   int64_t n, C grad_factor, SgdScalars<C> s, C* out) {
  C gg = 0, ww = 0, gw = 0, wd = 0;
#pragma omp simd reduction(+ : gg, ww, gw, wd)
  for (int64_t j = 0; j < n; ++j) {
    C gf = C(load(g, j)) * grad_factor, wf = load(w, j), bn;
    C d = sgd_direction<Nesterov, C>(gf, load(b, j), s, bn);
    gg += gf * gf;
    ww += wf * wf;
    gw += gf * wf;
    wd += wf * d;
  }
  out[0] = gg;
  out[1] = ww;
  out[2] = gw;
  out[3] = wd;
}

// The buffer and w over one row. With Project (kept projected buffer), the stored
// buffer and the direction are b - c·w; else the projection is folded into ``scale``.
template <bool Nesterov, bool Project, typename S, typename C>
void sgd_row_apply(S* __restrict__ w, const S* __restrict__ g, S* __restrict__ b, int64_t n,
                   C grad_factor, SgdScalars<C> s, C c, C scale, C neg_step) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    C gf = C(load(g, j)) * grad_factor, wf = load(w, j), bn;
    C d = sgd_direction<Nesterov, C>(gf, load(b, j), s, bn);
    if (Project) {
      bn = bn - wf * c;
      d = bn;
    }
    store(b, j, bn);
    store(w, j, wf * scale + neg_step * d);
  }
}

template <bool Nesterov, bool Project, typename S, typename C>
void sgdp_tensor(S* w, const S* g, S* b, int64_t rows, int64_t cols, bool projected, C neg_step,
                 const SgdScalars<C>& s, const Common<C>& k, int64_t* branch) {
  std::vector<C> stats(projected ? 4 * rows : 0), coef(rows, C(0));
  C ratio = 1;
  const bool parallel = rows * cols >= 32768;
  const C gfac = k.grad_factor;
  if (projected) {
#pragma omp parallel for if (parallel) num_threads(k.threads) schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t o = r * cols;
      sgd_row_stats<Nesterov, S, C>(w + o, g + o, b + o, cols, gfac, s, &stats[4 * r]);
    }
    int64_t code = decide<C>(stats.data(), rows, cols, k, coef.data(), &ratio);
    if (!k.skip) *branch = code;
  }
  if (k.skip) return;
  const C decay = C(1) - k.decay_rate * ratio;
#pragma omp parallel for if (parallel) num_threads(k.threads) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const C c = coef[r];
    const C scale = Project ? decay : decay - neg_step * c;
    const int64_t o = r * cols;
    sgd_row_apply<Nesterov, Project, S, C>(w + o, g + o, b + o, cols, gfac, s, c, scale,
                                           neg_step);
  }
}

template <typename C>
Common<C> common(const double* scalars, const uint8_t* skip) {
  // scalars: grad_factor, decay_rate, delta, wd_ratio, eps, threads
  return Common<C>{C(scalars[0]), C(scalars[1]), scalars[2], C(scalars[3]),
                   C(scalars[4]), *skip != 0,     int(scalars[5])};
}

template <typename S, typename C>
void adamp_bucket(int64_t n, void** w, void** g, void** m, void** v, const int64_t* rows,
                  const int64_t* cols, int64_t n_projected, const double* shift,
                  const double* neg_step, const double* scalars, const uint8_t* skip,
                  int64_t nesterov, int64_t** branch) {
  // scalars: grad_factor, decay_rate, delta, wd_ratio, eps, threads, 1-β₁, β₂, 1-β₂
  Common<C> k = common<C>(scalars, skip);
  AdamScalars<C> a{C(scalars[6]), C(scalars[7]), C(scalars[8])};
  auto tensor = nesterov ? (a.c1 < C(0.5) ? adamp_tensor<true, true, S, C>
                                           : adamp_tensor<true, false, S, C>)
                         : (a.c1 < C(0.5) ? adamp_tensor<false, true, S, C>
                                          : adamp_tensor<false, false, S, C>);
  for (int64_t i = 0; i < n; ++i) {
    tensor(static_cast<S*>(w[i]), static_cast<const S*>(g[i]),
                       static_cast<S*>(m[i]), static_cast<S*>(v[i]), rows[i], cols[i],
                       i < n_projected, C(shift[i]), C(neg_step[i]), a, k,
           i < n_projected ? branch[i] : nullptr);
  }
}

template <typename S, typename C>
void sgdp_bucket(int64_t n, void** w, void** g, void** b, const int64_t* rows,
                 const int64_t* cols, int64_t n_projected, const double* neg_step,
                 const double* scalars, const uint8_t* skip, int64_t nesterov, int64_t project,
                 int64_t** branch) {
  // scalars: grad_factor, decay_rate, delta, wd_ratio, eps, threads, μ, 1-τ
  Common<C> k = common<C>(scalars, skip);
  SgdScalars<C> s{C(scalars[6]), C(scalars[7])};
  auto tensor = nesterov ? (project ? sgdp_tensor<true, true, S, C> : sgdp_tensor<true, false, S, C>)
                         : (project ? sgdp_tensor<false, true, S, C>
                                    : sgdp_tensor<false, false, S, C>);
  for (int64_t i = 0; i < n; ++i) {
    tensor(static_cast<S*>(w[i]), static_cast<const S*>(g[i]),
                      static_cast<S*>(b[i]), rows[i], cols[i], i < n_projected,
                      C(neg_step[i]), s, k, i < n_projected ? branch[i] : nullptr);
  }
}

}  // namespace

#define ADAMP_BUCKET(NAME, S, C)                                                           \
  extern "C" void NAME(int64_t n, void** w, void** g, void** m, void** v,                \
                       const int64_t* rows, const int64_t* cols, int64_t n_projected, \
                       const double* shift, const double* neg_step, const double* scalars, \
                       const uint8_t* skip, int64_t nesterov, int64_t** branch) {          \
    adamp_bucket<S, C>(n, w, g, m, v, rows, cols, n_projected, shift, neg_step, scalars,     \
                       skip, nesterov, branch);                                            \
  }
#define SGDP_BUCKET(NAME, S, C)                                                            \
  extern "C" void NAME(int64_t n, void** w, void** g, void** b, const int64_t* rows,      \
                       const int64_t* cols, int64_t n_projected, const double* neg_step, \
                       const double* scalars, const uint8_t* skip, int64_t nesterov,       \
                       int64_t project, int64_t** branch) {                               \
    sgdp_bucket<S, C>(n, w, g, b, rows, cols, n_projected, neg_step, scalars, skip, nesterov, \
                      project, branch);                                                    \
  }

ADAMP_BUCKET(adamp_float32, float, float)
ADAMP_BUCKET(adamp_float64, double, double)
ADAMP_BUCKET(adamp_float16, _Float16, float)
ADAMP_BUCKET(adamp_bfloat16, BF16, float)
SGDP_BUCKET(sgdp_float32, float, float)
SGDP_BUCKET(sgdp_float64, double, double)
SGDP_BUCKET(sgdp_float16, _Float16, float)
SGDP_BUCKET(sgdp_bfloat16, BF16, float)
