"""C++ source of the CPU radiance-field kernels (built by :mod:`vid2model.nerf.kernels`).

Rays march through a sparse voxel grid (vertex rows found through a dense index grid, -1 = empty) with
a coarse occupancy grid for empty-space skipping, trilinear interpolation of raw density and SH
coefficients, and front-to-back compositing with early termination. The backward pass recomputes each
ray (nothing is stored) and scatters into per-thread gradient buffers (no atomics); the Adam step sums
them over the rows a batch touched only. The sampling rule is that of :func:`vid2model.nerf.render.march`,
which the tests compare against.

ip (int params): R, occupancy cell size, contract (0/1), C (channels), K (SH coefficients per colour),
max_steps. fp (float params): B (grid half size), step (normalised units), shift (density), empty_raw,
T_stop, bg r, g, b, t_near, far (unbounded: |u|_inf where marching stops), dvox (a sample's length in
voxels: density is per voxel, so the step the grid is sampled at, not the world length, sets opacity). Beyond
the unit cube an unbounded scene's shell maps ``|u| -> B - (B - 1) |u|^-q`` with q = 1 / (B - 1).
"""

SOURCE = r"""
#include <cmath>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <omp.h>

extern "C" int nerf_num_threads() { return omp_get_max_threads(); }

struct P {
  int R, cs, contract, C, K, max_steps, RC;
  float B, step, shift, empty_raw, T_stop, bg[3], t_near, far, dvox, q;
};

static P unpack(const int* ip, const float* fp) {
  P p;
  p.R = ip[0]; p.cs = ip[1]; p.contract = ip[2]; p.C = ip[3]; p.K = ip[4]; p.max_steps = ip[5];
  p.RC = (p.R - 2) / p.cs + 1;
  p.B = fp[0]; p.step = fp[1]; p.shift = fp[2]; p.empty_raw = fp[3]; p.T_stop = fp[4];
  p.bg[0] = fp[5]; p.bg[1] = fp[6]; p.bg[2] = fp[7]; p.t_near = fp[8]; p.far = fp[9]; p.dvox = fp[10];
  p.q = p.contract ? 1.f / (p.B - 1.f) : 1.f;
  return p;
}

static inline float softplus(float x) { return x > 20.f ? x : std::log1p(std::exp(x)); }
static inline float sigm(float x) { return 1.f / (1.f + std::exp(-x)); }

static void sh_basis(const float* d, int K, float* Y) {
  float x = d[0], y = d[1], z = d[2];
  Y[0] = 0.28209479f;
  if (K > 1) { Y[1] = -0.48860251f * y; Y[2] = 0.48860251f * z; Y[3] = -0.48860251f * x; }
  if (K > 4) {
    Y[4] = 1.09254843f * x * y; Y[5] = -1.09254843f * y * z; Y[6] = 0.31539157f * (2 * z * z - x * x - y * y);
    Y[7] = -1.09254843f * x * z; Y[8] = 0.54627421f * (x * x - y * y);
  }
}

// ray range: bounded -> the box [-B,B]^3; unbounded -> from t_near on
static bool ray_range(const P& p, const float* o, const float* d, float& t0, float& t1) {
  if (p.contract) { t0 = p.t_near; t1 = 1e30f; return true; }
  t0 = p.t_near; t1 = 1e30f;
  for (int a = 0; a < 3; ++a) {
    float inv = 1.f / (std::fabs(d[a]) > 1e-9f ? d[a] : 1e-9f);
    float ta = (-p.B - o[a]) * inv, tb = (p.B - o[a]) * inv;
    if (ta > tb) std::swap(ta, tb);
    t0 = std::max(t0, ta); t1 = std::min(t1, tb);
  }
  return t1 > t0;
}

// One march step: the sample's grid coordinates g and interval dt; false when the ray has left the grid.
static inline bool place(const P& p, const float* o, const float* d, float t, float& dt, float* g, float& tm) {
  float u[3];
  if (p.contract) {
    float m = 0.f;
    for (int a = 0; a < 3; ++a) { u[a] = o[a] + t * d[a]; m = std::max(m, std::fabs(u[a])); }
    if (m > p.far) return false;
    // the world step that keeps a contracted step: 1 / f'(m) = m^(1 + q)
    float s = std::max(1.f, m);
    dt = p.step * s * (p.q == 1.f ? s : std::pow(s, p.q));
    tm = t + 0.5f * dt;
    m = 0.f;
    for (int a = 0; a < 3; ++a) { u[a] = o[a] + tm * d[a]; m = std::max(m, std::fabs(u[a])); }
    float k = m > 1.f ? (p.B - (p.B - 1.f) * (p.q == 1.f ? 1.f / m : std::pow(m, -p.q))) / m : 1.f;
    for (int a = 0; a < 3; ++a) u[a] *= k;
  } else {
    dt = p.step; tm = t + 0.5f * dt;
    for (int a = 0; a < 3; ++a) u[a] = o[a] + tm * d[a];
  }
  float sc = (p.R - 1) / (2.f * p.B);
  for (int a = 0; a < 3; ++a) g[a] = (u[a] + p.B) * sc;
  return true;
}

// corner rows and weights of the voxel holding g; false when empty (outside, unoccupied or no active corner)
static inline bool corners(const P& p, const int32_t* idx, const uint8_t* occ, const float* g, int32_t* rows,
                           float* w) {
  int i[3]; float f[3];
  for (int a = 0; a < 3; ++a) {
    if (!(g[a] >= 0.f && g[a] <= p.R - 1)) return false;
    i[a] = std::min((int)g[a], p.R - 2); f[a] = g[a] - i[a];
  }
  if (!occ[((i[0] / p.cs) * p.RC + i[1] / p.cs) * p.RC + i[2] / p.cs]) return false;
  bool any = false;
  for (int c = 0; c < 8; ++c) {
    int a = c >> 2, b = (c >> 1) & 1, e = c & 1;
    rows[c] = idx[((int64_t)(i[0] + a) * p.R + (i[1] + b)) * p.R + (i[2] + e)];
    w[c] = (a ? f[0] : 1 - f[0]) * (b ? f[1] : 1 - f[1]) * (e ? f[2] : 1 - f[2]);
    any |= rows[c] >= 0;
  }
  return any;
}

// raw density and colour logits of a sample
static inline float interp(const P& p, const float* data, const int32_t* rows, const float* w, const float* Y,
                           float* col) {
  float raw = 0.f, sh[27];
  int n = 3 * p.K;
  for (int k = 0; k < n; ++k) sh[k] = 0.f;
  for (int c = 0; c < 8; ++c) {
    if (rows[c] < 0) { raw += w[c] * p.empty_raw; continue; }
    const float* r = data + (int64_t)rows[c] * p.C;
    raw += w[c] * r[0];
    for (int k = 0; k < n; ++k) sh[k] += w[c] * r[1 + k];
  }
  for (int ch = 0; ch < 3; ++ch) {
    float s = 0.f;
    for (int k = 0; k < p.K; ++k) s += Y[k] * sh[ch * p.K + k];
    col[ch] = sigm(s);
  }
  return raw;
}

// The samples of one ray in order: visit(rows, w, col, raw, alpha, tm, u) for each sample that falls in an
// occupied voxel, until visit returns false (the caller's transmittance fell under T_stop); u is the sample's
// place along the ray in voxels of the (contracted) grid. The forward and backward passes march the same
// samples through this one loop.
template <class Visit>
static inline void march(const P& p, const float* data, const int32_t* idx, const uint8_t* occ, const float* ro,
                         const float* rd, const float* Y, Visit&& visit) {
  float t0, t1;
  if (!ray_range(p, ro, rd, t0, t1)) return;
  float t = t0;
  for (int s = 0; s < p.max_steps && t < t1; ++s) {
    float dt, tm, g[3], w[8], col[3]; int32_t rows[8];
    if (!place(p, ro, rd, t, dt, g, tm)) break;
    t += dt;
    if (!corners(p, idx, occ, g, rows, w)) continue;
    float raw = interp(p, data, rows, w, Y, col);
    float alpha = 1.f - std::exp(-softplus(raw + p.shift) * p.dvox);
    if (!visit(rows, w, col, raw, alpha, tm, (s + 0.5f) * p.dvox)) break;
  }
}

extern "C" void nerf_forward(int n, const float* o, const float* d, const float* data, const int32_t* idx,
                             const uint8_t* occ, const int* ip, const float* fp, float* rgb, float* depth,
                             float* acc, int32_t* n_samples, float* mom) {
  P p = unpack(ip, fp);
  #pragma omp parallel for schedule(dynamic, 64)
  for (int r = 0; r < n; ++r) {
    const float* ro = o + 3 * r; const float* rd = d + 3 * r;
    float Y[9], C[3] = {0, 0, 0}, T = 1.f, D = 0.f, M1 = 0.f, M2 = 0.f;
    int ns = 0;
    sh_basis(rd, p.K, Y);
    march(p, data, idx, occ, ro, rd, Y, [&](const int32_t*, const float*, const float* col, float, float alpha,
                                             float tm, float u) {
      float wt = T * alpha;
      for (int ch = 0; ch < 3; ++ch) C[ch] += wt * col[ch];
      D += wt * tm; ++ns;
      M1 += wt * u; M2 += wt * u * u;
      T *= 1.f - alpha;
      return T >= p.T_stop;
    });
    for (int ch = 0; ch < 3; ++ch) rgb[3 * r + ch] = C[ch] + T * p.bg[ch];
    depth[r] = D; acc[r] = 1.f - T; n_samples[r] = ns;
    if (mom) { mom[3 * r] = 1.f - T; mom[3 * r + 1] = M1; mom[3 * r + 2] = M2; }
  }
}

// grads: nthreads x rows x C, touched: nthreads x rows (both left for nerf_adam to sum and clear)
extern "C" void nerf_backward(int n, const float* o, const float* d, const float* data, const int32_t* idx,
                              const uint8_t* occ, const int* ip, const float* fp, const float* rgb,
                              const float* g_rgb, const float* depth, const float* g_depth, const float* acc,
                              const float* g_acc, const float* mom, float g_spread, float cap2, int64_t rows_total,
                              float* grads, uint8_t* touched) {
  P p = unpack(ip, fp);
  #pragma omp parallel for schedule(dynamic, 64)
  for (int r = 0; r < n; ++r) {
    int tid = omp_get_thread_num();
    float* G = grads + (int64_t)tid * rows_total * p.C;
    uint8_t* tc = touched + (int64_t)tid * rows_total;
    const float* ro = o + 3 * r; const float* rd = d + 3 * r;
    const float* Cf = rgb + 3 * r; const float* gr = g_rgb + 3 * r;
    float Y[9], A[3] = {0, 0, 0}, T = 1.f, AD = 0.f;
    // the expected depth's gradient (optional: a depth prior), the same rule with the sample's distance
    // as its colour and no background
    const float gd = g_depth ? g_depth[r] : 0.f, Df = depth ? depth[r] : 0.f;
    // the opacity's gradient (optional: a sparsity prior), the same rule with colour 1 and no background
    const float ga = g_acc ? g_acc[r] : 0.f, Af = acc ? acc[r] : 0.f;
    float AA = 0.f;
    // the spread's gradient (optional: a compactness prior): the weighted variance of the samples' places u
    // about their mean, sum_i w_i (u_i - U)^2 with U = sum w u / sum w (its own gradient through U is zero),
    // is the same rule with (u_i - U)^2 as the sample's value
    const float gs = mom ? g_spread : 0.f;
    // capped at cap2 (squared voxels, 0: none), a sample's value is min((u_i - U)^2, cap2) with U held fixed:
    // a ray that meets two surfaces pays at most cap2, not the square of their distance; the sum over the ray
    // then needs a march of its own
    float U = 0.f, Q = 0.f, QA = 0.f;
    sh_basis(rd, p.K, Y);
    if (gs != 0.f) {
      float m0 = std::max(mom[3 * r], 1e-6f);
      U = mom[3 * r + 1] / m0;
      if (cap2 <= 0.f) {
        Q = std::max(mom[3 * r + 2] - mom[3 * r + 1] * U, 0.f);
      } else {
        float T2 = 1.f;
        march(p, data, idx, occ, ro, rd, Y, [&](const int32_t*, const float*, const float*, float, float alpha,
                                                 float, float u) {
          Q += T2 * alpha * std::min((u - U) * (u - U), cap2);
          T2 *= 1.f - alpha;
          return T2 >= p.T_stop;
        });
      }
    }
    march(p, data, idx, occ, ro, rd, Y, [&](const int32_t* rows, const float* w, const float* col, float raw,
                                             float alpha, float tm, float u) {
      float wt = T * alpha, Tn = T * (1.f - alpha);
      float dsig = 0.f, dz[3];
      for (int ch = 0; ch < 3; ++ch) {
        A[ch] += wt * col[ch];
        dsig += gr[ch] * (Tn * col[ch] - (Cf[ch] - A[ch]));
        dz[ch] = wt * gr[ch] * col[ch] * (1.f - col[ch]);
      }
      if (gd != 0.f) {
        AD += wt * tm;
        dsig += gd * (Tn * tm - (Df - AD));
      }
      if (ga != 0.f) {
        AA += wt;
        dsig += ga * (Tn - (Af - AA));
      }
      if (gs != 0.f) {
        float q = (u - U) * (u - U);
        if (cap2 > 0.f) q = std::min(q, cap2);
        QA += wt * q;
        dsig += gs * (Tn * q - (Q - QA));
      }
      float draw = dsig * p.dvox * sigm(raw + p.shift);
      for (int c = 0; c < 8; ++c) {
        if (rows[c] < 0) continue;
        float* Gr = G + (int64_t)rows[c] * p.C;
        tc[rows[c]] = 1;
        Gr[0] += w[c] * draw;
        for (int ch = 0; ch < 3; ++ch) {
          float v = w[c] * dz[ch];
          for (int k = 0; k < p.K; ++k) Gr[1 + ch * p.K + k] += v * Y[k];
        }
      }
      T = Tn;
      return T >= p.T_stop;
    });
  }
}

// Laplacian (total variation, squared) gradient on density and colour: each row writes only its own
// gradient (thread 0's buffer), so rows run in parallel without races.
extern "C" void nerf_tv(int64_t rows_total, const float* data, const int32_t* idx, const int32_t* coords,
                        int R, int C, float w_density, float w_color, int64_t stride, int64_t offset,
                        float* grads, uint8_t* touched) {
  #pragma omp parallel for schedule(static)
  for (int64_t q = offset; q < rows_total; q += stride) {
    const int32_t* c = coords + 3 * q;
    const float* me = data + q * C;
    float* G = grads + q * C;
    bool any = false;
    for (int a = 0; a < 3; ++a) {
      for (int sgn = -1; sgn <= 1; sgn += 2) {
        int v[3] = {c[0], c[1], c[2]};
        v[a] += sgn;
        if (v[a] < 0 || v[a] >= R) continue;
        int32_t nb = idx[((int64_t)v[0] * R + v[1]) * R + v[2]];
        if (nb < 0) continue;
        const float* o = data + (int64_t)nb * C;
        G[0] += w_density * (me[0] - o[0]);
        for (int k = 1; k < C; ++k) G[k] += w_color * (me[k] - o[k]);
        any = true;
      }
    }
    if (any) touched[q] = 1;
  }
}

// Adam on the rows some thread touched (lazy: untouched rows keep their moments), then clears the buffers.
extern "C" void nerf_adam(int64_t rows_total, int C, int nthreads, float* data, float* m, float* v,
                          float* grads, uint8_t* touched, float lr_density, float lr_color, float b1, float b2,
                          float eps, float bc1, float bc2) {
  #pragma omp parallel for schedule(static, 4096)
  for (int64_t q = 0; q < rows_total; ++q) {
    bool any = false;
    for (int t = 0; t < nthreads; ++t) any |= touched[t * rows_total + q] != 0;
    if (!any) continue;
    for (int k = 0; k < C; ++k) {
      float g = 0.f;
      for (int t = 0; t < nthreads; ++t) {
        float* gp = grads + ((int64_t)t * rows_total + q) * C + k;
        g += *gp; *gp = 0.f;
      }
      int64_t i = q * C + k;
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      float lr = k == 0 ? lr_density : lr_color;
      data[i] -= lr * (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps);
    }
    for (int t = 0; t < nthreads; ++t) touched[t * rows_total + q] = 0;
  }
}
"""
