"""C++ source of the CPU splat kernels (compiled at first use by :mod:`vid2model.splat.kernels`).

Kept as a Python string so it ships inside the wheel with no package-data rules.
"""

SOURCE = r"""
// Tile-based Gaussian splat compositing for CPU (forward + backward), OpenMP over tiles.
//
// Conventions (shared with vid2model/splat/reference.py):
//   pixel (x, y) has its centre at (x + 0.5, y + 0.5) (COLMAP convention, vid2model.camera.pixel_grid);
//   power = -0.5 (A dx^2 + C dy^2) - B dx dy with d = centre - mean, conic = (A, B, C);
//   alpha = min(0.99, opacity * exp(power)); a splat is skipped when alpha < 1/255;
//   a pixel stops before the splat that would bring its transmittance below 1e-4.
// The inner loops run over the pixels of one tile for one splat ("splat-major"), branch-free,
// so the compiler vectorises them (AVX2 / AVX-512 with -O3 -ffast-math -march=native).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

static const float kMinAlpha = 1.0f / 255.0f;
static const float kMaxAlpha = 0.99f;
static const float kMinT = 1e-4f;
static const int kMaxTile = 32;

static inline bool pixel_range(float m, float e, int size, int* lo, int* hi) {
  if (!(e > 0.0f)) return false;
  // pixels whose centre (vid2model.camera.pixel_grid: index + 0.5) lies in [m - e, m + e]
  float a = std::ceil(m - e - 0.5f), b = std::floor(m + e - 0.5f);
  if (b < 0.0f || a > (float)(size - 1) || a > b) return false;
  *lo = a < 0.0f ? 0 : (int)a;
  *hi = b > (float)(size - 1) ? size - 1 : (int)b;
  return true;
}

// The ellipse where a splat's alpha reaches 1/255: A dx^2 + 2 B dx dy + C dy^2 <= k (conic (A, B, C),
// k = 2 ln(255 opacity)). Its extent along one axis over a band [l, h] of the other (offsets from the
// mean): the extreme of a centrally symmetric ellipse lies at +-t on the band axis, else at the band's end
// nearest to it. ``P`` is the coefficient of the extent axis, ``Q`` of the band axis. k is widened by a
// little so rounding never culls a pixel the compositing loop would blend; false when the band misses it.
static inline bool ellipse_span(float P, float B, float Q, float k, float l, float h, float* lo, float* hi) {
  const float det = P * Q - B * B;
  if (!(P > 0.0f && Q > 0.0f && det > 0.0f && k > 0.0f)) {  // degenerate: the caller's box stands
    *lo = -1e30f;
    *hi = 1e30f;
    return true;
  }
  const float kk = k * 1.001f + 1e-4f;
  const float reach = std::sqrt(kk * P / det);  // half extent along the band axis
  if (l > reach || h < -reach) return false;
  const float t = -B * std::sqrt(kk / (Q * det));  // band coordinate of the farthest point along +extent
  const float dh = std::min(std::max(t, l), h), dl = std::min(std::max(-t, l), h);
  *hi = (-B * dh + std::sqrt(std::max(P * kk - det * dh * dh, 0.0f))) / P;
  *lo = (-B * dl - std::sqrt(std::max(P * kk - det * dl * dl, 0.0f))) / P;
  return *lo <= *hi;
}

// Pixel-index range [p0, p1) of the rows of tile (bx, by) where the splat's ellipse meets the tile's
// columns: tighter than its bounding box for a slanted splat (packed record ``s``; s[11] = k).
static inline bool tile_rows_exact(const float* s, int bx, int by, int tile, int W, int H, int* p0, int* p1) {
  int y0, y1;
  if (!pixel_range(s[1], s[10], H, &y0, &y1)) return false;
  const int cx1 = std::min(bx + tile, W) - 1;
  float lo, hi;  // dy range of the ellipse over the columns' centres
  if (!ellipse_span(s[4], s[3], s[2], s[11], bx + 0.5f - s[0], cx1 + 0.5f - s[0], &lo, &hi)) return false;
  y0 = std::max(y0, by);
  y1 = std::min(y1, by + tile - 1);
  const float a = std::ceil(s[1] + lo - 0.5f), b = std::floor(s[1] + hi - 0.5f);
  if (y0 > y1 || a > (float)y1 || b < (float)y0) return false;
  if (a > (float)y0) y0 = (int)a;
  if (b < (float)y1) y1 = (int)b;
  *p0 = (y0 - by) * tile;
  *p1 = (y1 - by + 1) * tile;
  return true;
}

// Calls f(tile index) for each tile whose pixels the splat's ellipse reaches, row by row of tiles (the
// columns a row of tiles needs are the ellipse's over that row's pixel centres).
template <class F>
static inline void for_tiles(const float* s, int W, int H, int tile, F f) {
  int x0, x1, y0, y1;
  if (!pixel_range(s[0], s[9], W, &x0, &x1)) return;
  if (!pixel_range(s[1], s[10], H, &y0, &y1)) return;
  const int tw = (W + tile - 1) / tile;
  if (x0 / tile == x1 / tile) {  // one column of tiles: the rows within each are culled when compositing
    for (int ty = y0 / tile; ty <= y1 / tile; ++ty) f(ty * tw + x0 / tile);
    return;
  }
  for (int ty = y0 / tile; ty <= y1 / tile; ++ty) {
    const int r0 = std::max(y0, ty * tile), r1 = std::min(y1, ty * tile + tile - 1);
    float lo, hi;
    if (!ellipse_span(s[2], s[3], s[4], s[11], r0 + 0.5f - s[1], r1 + 0.5f - s[1], &lo, &hi)) continue;
    const float a = std::ceil(s[0] + lo - 0.5f), b = std::floor(s[0] + hi - 0.5f);
    const int c0 = a > (float)x0 ? (int)a : x0, c1 = b < (float)x1 ? (int)b : x1;
    for (int tx = c0 / tile; c0 <= c1 && tx <= c1 / tile; ++tx) f(ty * tw + tx);
  }
}

// Per-pixel state of tile (bx, by) before compositing: pixel centres (COLMAP +0.5), transmittance 1,
// nothing accumulated; pixels outside the image start done.
static inline void tile_fwd_init(int bx, int by, int tile, int W, int H, float* px, float* py, float* T, float* done,
                                 float* cr, float* cg, float* cb, int32_t* lst) {
  for (int p = 0; p < tile * tile; ++p) {
    int x = bx + p % tile, y = by + p / tile;
    // pixel centre: the rule of vid2model.camera.pixel_grid
    px[p] = x + 0.5f;
    py[p] = y + 0.5f;
    T[p] = 1.0f;
    done[p] = (x < W && y < H) ? 0.0f : 1.0f;
    cr[p] = cg[p] = cb[p] = 0.0f;
    lst[p] = -1;
  }
}

// Per-pixel state of tile (bx, by) for the backward pass: final transmittance, last contributing splat,
// dL/dpixel and the background's share of it. Returns the latest last index over the tile (-1: none).
static inline int32_t tile_bwd_init(int bx, int by, int tile, int W, int H, const float* T_fin, const int32_t* last,
                                    const float* dimg, const float* bg, float* px, float* py, float* T, float* sr,
                                    float* sg, float* sb, float* dr, float* dg, float* db, float* bgd, int32_t* lst) {
  int32_t kmax = -1;
  for (int p = 0; p < tile * tile; ++p) {
    int x = bx + p % tile, y = by + p / tile;
    // pixel centre: the rule of vid2model.camera.pixel_grid
    px[p] = x + 0.5f;
    py[p] = y + 0.5f;
    sr[p] = sg[p] = sb[p] = 0.0f;
    if (x < W && y < H) {
      int64_t o = (int64_t)y * W + x;
      T[p] = T_fin[o];
      lst[p] = last[o];
      dr[p] = dimg[3 * o];
      dg[p] = dimg[3 * o + 1];
      db[p] = dimg[3 * o + 2];
    } else {
      T[p] = 1.0f;
      lst[p] = -1;
      dr[p] = dg[p] = db[p] = 0.0f;
    }
    bgd[p] = T[p] * (bg[0] * dr[p] + bg[1] * dg[p] + bg[2] * db[p]);
    kmax = std::max(kmax, lst[p]);
  }
  return kmax;
}

extern "C" {

int v2m_num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// ---------------------------------------------------------------------------------------------------
// Projection (EWA splatting) + SH colour, forward and analytic backward, one splat per loop iteration.
// Mirrors vid2model.splat.rasterize.project (its projection: vid2model.camera.project_with_jacobian) and
// sh.sh_to_rgb_split exactly (same clamps, same gradient masks as torch autograd), so the torch versions serve
// as the reference in the tests.
// cam: fx, fy, cx, cy, near, lowpass, width, height; vm: 4x4 row-major world-to-camera.

static const float kSH_C0 = 0.28209479177387814f, kSH_C1 = 0.4886025119029199f;
static const float kSH_C2[5] = {1.0925484305920792f, -1.0925484305920792f, 0.31539156525252005f,
                                -1.0925484305920792f, 0.5462742152960396f};
static const float kSH_C3[7] = {-0.5900435899266435f, 2.890611442640554f, -0.4570457994644658f,
                                0.3731763325901154f, -0.4570457994644658f, 1.445305721320277f,
                                -0.5900435899266435f};

static inline bool finite_bits(float f) {  // -ffast-math folds std::isfinite to true
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return (u & 0x7f800000u) != 0x7f800000u;
}

// basis[0..15] for unit direction (x, y, z); deriv (optional) = d basis / d (x, y, z), (16, 3)
static inline void sh_basis(float x, float y, float z, int deg, float* b, float* d) {
  b[0] = kSH_C0;
  if (d) d[0] = d[1] = d[2] = 0.0f;
  if (deg < 1) return;
  b[1] = -kSH_C1 * y; b[2] = kSH_C1 * z; b[3] = -kSH_C1 * x;
  if (d) {
    d[3] = 0; d[4] = -kSH_C1; d[5] = 0;
    d[6] = 0; d[7] = 0; d[8] = kSH_C1;
    d[9] = -kSH_C1; d[10] = 0; d[11] = 0;
  }
  if (deg < 2) return;
  float xx = x * x, yy = y * y, zz = z * z, xy = x * y, yz = y * z, xz = x * z;
  b[4] = kSH_C2[0] * xy; b[5] = kSH_C2[1] * yz; b[6] = kSH_C2[2] * (2 * zz - xx - yy);
  b[7] = kSH_C2[3] * xz; b[8] = kSH_C2[4] * (xx - yy);
  if (d) {
    float* e = d + 12;
    e[0] = kSH_C2[0] * y; e[1] = kSH_C2[0] * x; e[2] = 0;
    e[3] = 0; e[4] = kSH_C2[1] * z; e[5] = kSH_C2[1] * y;
    e[6] = -2 * kSH_C2[2] * x; e[7] = -2 * kSH_C2[2] * y; e[8] = 4 * kSH_C2[2] * z;
    e[9] = kSH_C2[3] * z; e[10] = 0; e[11] = kSH_C2[3] * x;
    e[12] = 2 * kSH_C2[4] * x; e[13] = -2 * kSH_C2[4] * y; e[14] = 0;
  }
  if (deg < 3) return;
  b[9] = kSH_C3[0] * y * (3 * xx - yy);
  b[10] = kSH_C3[1] * xy * z;
  b[11] = kSH_C3[2] * y * (4 * zz - xx - yy);
  b[12] = kSH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy);
  b[13] = kSH_C3[4] * x * (4 * zz - xx - yy);
  b[14] = kSH_C3[5] * z * (xx - yy);
  b[15] = kSH_C3[6] * x * (xx - 3 * yy);
  if (d) {
    float* e = d + 27;
    e[0] = kSH_C3[0] * 6 * xy; e[1] = kSH_C3[0] * (3 * xx - 3 * yy); e[2] = 0;
    e[3] = kSH_C3[1] * yz; e[4] = kSH_C3[1] * xz; e[5] = kSH_C3[1] * xy;
    e[6] = kSH_C3[2] * (-2 * xy); e[7] = kSH_C3[2] * (4 * zz - xx - 3 * yy); e[8] = kSH_C3[2] * 8 * yz;
    e[9] = kSH_C3[3] * (-6 * xz); e[10] = kSH_C3[3] * (-6 * yz); e[11] = kSH_C3[3] * (6 * zz - 3 * xx - 3 * yy);
    e[12] = kSH_C3[4] * (4 * zz - 3 * xx - yy); e[13] = kSH_C3[4] * (-2 * xy); e[14] = kSH_C3[4] * 8 * xz;
    e[15] = kSH_C3[5] * 2 * xz; e[16] = kSH_C3[5] * (-2 * yz); e[17] = kSH_C3[5] * (xx - yy);
    e[18] = kSH_C3[6] * (3 * xx - 3 * yy); e[19] = kSH_C3[6] * (-6 * xy); e[20] = 0;
  }
}

struct ProjCtx {  // per-splat intermediates shared by forward and backward
  float pc[3], z, zs, u, v, tu, tv;
  bool z_ok, tu_ok, tv_ok;
  float qn[4], qnorm, rot[9], s[3], M[9], row0[3], row1[3], t0[3], t1[3], a, b, c, det;
  bool det_ok;
};

static inline void proj_one(int g, const float* means, const float* quats, const float* scales, const float* vm,
                            const float* cam, ProjCtx& P) {
  const float fx = cam[0], fy = cam[1], cx = cam[2], cy = cam[3], nearp = cam[4], lowpass = cam[5];
  const float W = cam[6], H = cam[7];
  // pc, z, zs, u, v, the clamp of (u, v) and row0/row1 repeat vid2model.camera.project_with_jacobian
  const float* m = means + 3 * g;
  for (int i = 0; i < 3; ++i) P.pc[i] = vm[4 * i] * m[0] + vm[4 * i + 1] * m[1] + vm[4 * i + 2] * m[2] + vm[4 * i + 3];
  P.z = P.pc[2];
  P.z_ok = P.z >= nearp;
  P.zs = P.z_ok ? P.z : nearp;
  P.u = P.pc[0] / P.zs;
  P.v = P.pc[1] / P.zs;
  // the box of vid2model.camera.JACOBIAN_BOX
  float ulo = (-0.15f * W - cx) / fx, uhi = (1.15f * W - cx) / fx;
  float vlo = (-0.15f * H - cy) / fy, vhi = (1.15f * H - cy) / fy;
  P.tu_ok = P.u >= ulo && P.u <= uhi;
  P.tv_ok = P.v >= vlo && P.v <= vhi;
  P.tu = std::min(std::max(P.u, ulo), uhi);
  P.tv = std::min(std::max(P.v, vlo), vhi);
  const float* q = quats + 4 * g;
  float qn2 = q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3];
  P.qnorm = std::max(std::sqrt(qn2), 1e-12f);
  for (int i = 0; i < 4; ++i) P.qn[i] = q[i] / P.qnorm;
  float w = P.qn[0], x = P.qn[1], y = P.qn[2], zq = P.qn[3];
  float* R = P.rot;
  R[0] = 1 - 2 * (y * y + zq * zq); R[1] = 2 * (x * y - w * zq); R[2] = 2 * (x * zq + w * y);
  R[3] = 2 * (x * y + w * zq); R[4] = 1 - 2 * (x * x + zq * zq); R[5] = 2 * (y * zq - w * x);
  R[6] = 2 * (x * zq - w * y); R[7] = 2 * (y * zq + w * x); R[8] = 1 - 2 * (x * x + y * y);
  for (int j = 0; j < 3; ++j) P.s[j] = scales[3 * g + j];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) P.M[3 * i + j] = R[3 * i + j] * P.s[j];
  float f0 = fx / P.zs, f1 = fy / P.zs;
  for (int i = 0; i < 3; ++i) {
    P.row0[i] = f0 * (vm[i] - P.tu * vm[8 + i]);
    P.row1[i] = f1 * (vm[4 + i] - P.tv * vm[8 + i]);
  }
  for (int j = 0; j < 3; ++j) {
    P.t0[j] = P.row0[0] * P.M[j] + P.row0[1] * P.M[3 + j] + P.row0[2] * P.M[6 + j];
    P.t1[j] = P.row1[0] * P.M[j] + P.row1[1] * P.M[3 + j] + P.row1[2] * P.M[6 + j];
  }
  P.a = P.t0[0] * P.t0[0] + P.t0[1] * P.t0[1] + P.t0[2] * P.t0[2] + lowpass;
  P.b = P.t0[0] * P.t1[0] + P.t0[1] * P.t1[1] + P.t0[2] * P.t1[2];
  P.c = P.t1[0] * P.t1[0] + P.t1[1] * P.t1[1] + P.t1[2] * P.t1[2] + lowpass;
  float det = P.a * P.c - P.b * P.b;
  P.det_ok = det >= 1e-12f;
  P.det = P.det_ok ? det : 1e-12f;
}

static inline void sh_dir(int g, const float* means, const float* campos, float* dir, float* nrm) {
  float d0 = means[3 * g] - campos[0], d1 = means[3 * g + 1] - campos[1], d2 = means[3 * g + 2] - campos[2];
  float n = std::max(std::sqrt(d0 * d0 + d1 * d1 + d2 * d2), 1e-12f);
  dir[0] = d0 / n; dir[1] = d1 / n; dir[2] = d2 / n;
  *nrm = n;
}

void v2m_project_fwd(int n, const float* means, const float* quats, const float* scales, const float* opac,
                     const float* sh0, const float* shN, int kN, int deg, const float* vm, const float* cam,
                     const float* campos, float* means2d, float* conics, float* colors, float* depths, float* ext) {
  const float nearp = cam[4];
  const int kd = (deg + 1) * (deg + 1);
#pragma omp parallel for schedule(static)
  for (int g = 0; g < n; ++g) {
    ProjCtx P;
    proj_one(g, means, quats, scales, vm, cam, P);
    conics[3 * g] = P.c / P.det;
    conics[3 * g + 1] = -P.b / P.det;
    conics[3 * g + 2] = P.a / P.det;
    // uv of vid2model.camera.project_with_jacobian
    means2d[2 * g] = cam[0] * P.u + cam[2];
    means2d[2 * g + 1] = cam[1] * P.v + cam[3];
    depths[g] = P.z;
    float o = std::max(opac[g], 1e-12f);
    float k = std::max(2.0f * std::log(255.0f * o), 0.0f);
    float ex = std::sqrt(k * P.a), ey = std::sqrt(k * P.c);
    bool ok = P.z > nearp && o > kMinAlpha && finite_bits(ex) && finite_bits(ey) && finite_bits(P.z);
    ext[2 * g] = ok ? ex : 0.0f;
    ext[2 * g + 1] = ok ? ey : 0.0f;
    float dir[3], nrm, basis[16];
    sh_dir(g, means, campos, dir, &nrm);
    sh_basis(dir[0], dir[1], dir[2], deg, basis, nullptr);
    for (int ch = 0; ch < 3; ++ch) {
      float r = kSH_C0 * sh0[3 * g + ch] + 0.5f;
      for (int j = 1; j < kd; ++j) r += basis[j] * shN[((size_t)g * kN + (j - 1)) * 3 + ch];
      colors[3 * g + ch] = std::max(r, 0.0f);
    }
  }
}

// Gradients w.r.t. means (N, 3), quats (N, 4), scales (N, 3), sh0 (N, 3), shN (N, kN, 3) (overwritten).
void v2m_project_bwd(int n, const float* means, const float* quats, const float* scales, const float* sh0,
                     const float* shN, int kN, int deg, const float* vm, const float* cam, const float* campos,
                     const float* d_means2d, const float* d_conics, const float* d_colors, float* d_means,
                     float* d_quats, float* d_scales, float* d_sh0, float* d_shN) {
  const float fx = cam[0], fy = cam[1];
  const int kd = (deg + 1) * (deg + 1);
#pragma omp parallel for schedule(static)
  for (int g = 0; g < n; ++g) {
    ProjCtx P;
    proj_one(g, means, quats, scales, vm, cam, P);
    // ---- conic = (c, -b, a) / det
    const float gA = d_conics[3 * g], gB = d_conics[3 * g + 1], gC = d_conics[3 * g + 2];
    const float id = 1.0f / P.det, id2 = id * id;
    const float a = P.a, b = P.b, c = P.c;
    float ga = gC * id, gb = -gB * id, gc = gA * id;
    if (P.det_ok) {  // d det = c da - 2b db + a dc; dX/d det = -X / det for X = c, -b, a
      float gdet = -(gA * c - gB * b + gC * a) * id2;
      ga += gdet * c;
      gb += gdet * (-2.0f * b);
      gc += gdet * a;
    }
    float dt0[3], dt1[3];
    for (int j = 0; j < 3; ++j) {
      dt0[j] = 2.0f * ga * P.t0[j] + gb * P.t1[j];
      dt1[j] = 2.0f * gc * P.t1[j] + gb * P.t0[j];
    }
    float drow0[3], drow1[3], dM[9];
    for (int i = 0; i < 3; ++i) {
      drow0[i] = dt0[0] * P.M[3 * i] + dt0[1] * P.M[3 * i + 1] + dt0[2] * P.M[3 * i + 2];
      drow1[i] = dt1[0] * P.M[3 * i] + dt1[1] * P.M[3 * i + 1] + dt1[2] * P.M[3 * i + 2];
      for (int j = 0; j < 3; ++j) dM[3 * i + j] = P.row0[i] * dt0[j] + P.row1[i] * dt1[j];
    }
    // ---- M = rot * s (columns scaled)
    float dR[9];
    for (int j = 0; j < 3; ++j) {
      float ds = 0.0f;
      for (int i = 0; i < 3; ++i) {
        dR[3 * i + j] = dM[3 * i + j] * P.s[j];
        ds += dM[3 * i + j] * P.rot[3 * i + j];
      }
      d_scales[3 * g + j] = ds;
    }
    {
      const float w = P.qn[0], x = P.qn[1], y = P.qn[2], z = P.qn[3];
      float dq[4];
      dq[0] = 2 * (-z * dR[1] + y * dR[2] + z * dR[3] - x * dR[5] - y * dR[6] + x * dR[7]);
      dq[1] = 2 * (y * dR[1] + z * dR[2] + y * dR[3] - 2 * x * dR[4] - w * dR[5] + z * dR[6] + w * dR[7] -
                   2 * x * dR[8]);
      dq[2] = 2 * (-2 * y * dR[0] + x * dR[1] + w * dR[2] + x * dR[3] + z * dR[5] - w * dR[6] + z * dR[7] -
                   2 * y * dR[8]);
      dq[3] = 2 * (-2 * z * dR[0] - w * dR[1] + x * dR[2] + w * dR[3] - 2 * z * dR[4] + y * dR[5] + x * dR[6] +
                   y * dR[7]);
      float dot = dq[0] * w + dq[1] * x + dq[2] * y + dq[3] * z;
      bool nclamp = P.qnorm <= 1e-12f;
      for (int i = 0; i < 4; ++i) d_quats[4 * g + i] = (nclamp ? dq[i] : dq[i] - P.qn[i] * dot) / P.qnorm;
    }
    // ---- rows: row0 = fx/zs (R0 - tu R2), row1 = fy/zs (R1 - tv R2): J of vid2model.camera.project_with_jacobian
    float dzs = 0.0f, dtu = 0.0f, dtv = 0.0f;
    for (int i = 0; i < 3; ++i) {
      dzs -= (drow0[i] * P.row0[i] + drow1[i] * P.row1[i]) / P.zs;
      dtu -= fx / P.zs * drow0[i] * vm[8 + i];
      dtv -= fy / P.zs * drow1[i] * vm[8 + i];
    }
    // d uv / d (u, v) of vid2model.camera.project_with_jacobian
    float du = fx * d_means2d[2 * g] + (P.tu_ok ? dtu : 0.0f);
    float dv = fy * d_means2d[2 * g + 1] + (P.tv_ok ? dtv : 0.0f);
    float dpc[3];
    dpc[0] = du / P.zs;
    dpc[1] = dv / P.zs;
    dzs -= (du * P.u + dv * P.v) / P.zs;
    dpc[2] = P.z_ok ? dzs : 0.0f;
    float dm[3];
    for (int j = 0; j < 3; ++j) dm[j] = vm[j] * dpc[0] + vm[4 + j] * dpc[1] + vm[8 + j] * dpc[2];
    // ---- colour = max(C0 sh0 + sum_k basis_k shN_k + 0.5, 0)
    float dir[3], nrm, basis[16], dbasis[48];
    sh_dir(g, means, campos, dir, &nrm);
    sh_basis(dir[0], dir[1], dir[2], deg, basis, dbasis);
    float dcol[3];
    for (int ch = 0; ch < 3; ++ch) {
      float r = kSH_C0 * sh0[3 * g + ch] + 0.5f;
      for (int j = 1; j < kd; ++j) r += basis[j] * shN[((size_t)g * kN + (j - 1)) * 3 + ch];
      dcol[ch] = r >= 0.0f ? d_colors[3 * g + ch] : 0.0f;
      d_sh0[3 * g + ch] = kSH_C0 * dcol[ch];
    }
    float ddir[3] = {0.0f, 0.0f, 0.0f};
    for (int j = 1; j <= kN; ++j) {
      float* o = d_shN + ((size_t)g * kN + (j - 1)) * 3;
      if (j >= kd) {
        o[0] = o[1] = o[2] = 0.0f;
        continue;
      }
      const float* s = shN + ((size_t)g * kN + (j - 1)) * 3;
      float db = 0.0f;
      for (int ch = 0; ch < 3; ++ch) {
        o[ch] = basis[j] * dcol[ch];
        db += s[ch] * dcol[ch];
      }
      for (int i = 0; i < 3; ++i) ddir[i] += db * dbasis[3 * j + i];
    }
    if (nrm > 1e-12f) {
      float dd = ddir[0] * dir[0] + ddir[1] * dir[1] + ddir[2] * dir[2];
      for (int i = 0; i < 3; ++i) dm[i] += (ddir[i] - dir[i] * dd) / nrm;
    } else {
      for (int i = 0; i < 3; ++i) dm[i] += ddir[i] / nrm;
    }
    for (int i = 0; i < 3; ++i) d_means[3 * g + i] = dm[i];
  }
}

// Visible splats (ext[:, 0] > 0) sorted near to far by depth (stable LSD radix sort on the float bits;
// visible depths are > 0 so their bit patterns order like the values). Returns how many.
int v2m_sort_visible(int n, const float* depths, const float* ext, int32_t* order) {
  std::vector<uint32_t> key, key2;
  std::vector<int32_t> tmp;
  key.reserve(n);
  int m = 0;
  for (int g = 0; g < n; ++g)
    if (ext[2 * g] > 0.0f) {
      uint32_t u;
      std::memcpy(&u, depths + g, 4);
      key.push_back(u);
      order[m++] = g;
    }
  key2.resize(m);
  tmp.resize(m);
  int32_t* src = order;
  int32_t* dst = tmp.data();
  uint32_t* ks = key.data();
  uint32_t* kd2 = key2.data();
  for (int shift = 0; shift < 32; shift += 8) {
    int64_t cnt[257] = {0};
    for (int i = 0; i < m; ++i) cnt[((ks[i] >> shift) & 255u) + 1]++;
    if (m == 0 || cnt[1 + ((ks[0] >> shift) & 255u)] == m) continue;  // one digit value: pass is a no-op
    for (int i = 0; i < 256; ++i) cnt[i + 1] += cnt[i];
    for (int i = 0; i < m; ++i) {
      int64_t p = cnt[(ks[i] >> shift) & 255u]++;
      dst[p] = src[i];
      kd2[p] = ks[i];
    }
    std::swap(src, dst);
    std::swap(ks, kd2);
  }
  if (src != order) std::memcpy(order, src, sizeof(int32_t) * m);
  return m;
}

// ---------------------------------------------------------------------------------------------------
// Packed compositing: the visible splats are first gathered in depth order into one 64-byte record
// each (mx, my, A, B, C, opacity, r, g, b, ext_x, ext_y, pad...), and the tile lists hold ranks into
// that array. A tile then walks its splats in increasing memory order (one cache line per splat)
// instead of gathering from five arrays at random splat ids.
static const int kPS = 16;

void v2m_pack(int m, const int32_t* order, const float* means, const float* conics, const float* colors,
              const float* opac, const float* ext, float* packed) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < m; ++i) {
    int g = order[i];
    float* p = packed + (size_t)i * kPS;
    p[0] = means[2 * g]; p[1] = means[2 * g + 1];
    p[2] = conics[3 * g]; p[3] = conics[3 * g + 1]; p[4] = conics[3 * g + 2];
    p[5] = opac[g];
    p[6] = colors[3 * g]; p[7] = colors[3 * g + 1]; p[8] = colors[3 * g + 2];
    p[9] = ext[2 * g]; p[10] = ext[2 * g + 1];
    p[11] = 2.0f * std::log(255.0f * std::max(opac[g], 1e-12f));  // the ellipse's level (ellipse_span)
    for (int j = 12; j < kPS; ++j) p[j] = 0.0f;
  }
}

// Binning in ``nchunk`` contiguous runs of the depth order, one per thread: counts (nchunk, tiles) of
// the (tile, splat) pairs of each run; returns their total.
int64_t v2m_bin_count_p(int m, const float* packed, int W, int H, int tile, int nchunk, int32_t* counts) {
  const int nt = ((W + tile - 1) / tile) * ((H + tile - 1) / tile);
  int64_t total = 0;
#pragma omp parallel for schedule(static, 1) reduction(+ : total)
  for (int c = 0; c < nchunk; ++c) {
    int32_t* cnt = counts + (size_t)c * nt;
    const int i0 = (int)((int64_t)m * c / nchunk), i1 = (int)((int64_t)m * (c + 1) / nchunk);
    for (int i = i0; i < i1; ++i)
      for_tiles(packed + (size_t)i * kPS, W, H, tile, [&](int t) {
        cnt[t]++;
        total++;
      });
  }
  return total;
}

// ids: each tile's splats (ranks in the depth order), run c of tile t written from starts[c, t] on, so the
// lists keep the depth order whatever the number of runs.
void v2m_bin_fill_p(int m, const float* packed, int W, int H, int tile, int nchunk, const int64_t* starts,
                    int32_t* ids) {
  const int nt = ((W + tile - 1) / tile) * ((H + tile - 1) / tile);
#pragma omp parallel for schedule(static, 1)
  for (int c = 0; c < nchunk; ++c) {
    std::vector<int64_t> cur(starts + (size_t)c * nt, starts + (size_t)(c + 1) * nt);
    const int i0 = (int)((int64_t)m * c / nchunk), i1 = (int)((int64_t)m * (c + 1) / nchunk);
    for (int i = i0; i < i1; ++i) for_tiles(packed + (size_t)i * kPS, W, H, tile, [&](int t) { ids[cur[t]++] = i; });
  }
}

void v2m_forward_p(const float* packed, int W, int H, int tile, const float* bg, const int64_t* offsets,
                   const int32_t* ids, float* img, float* T_out, int32_t* last) {
  int tw = (W + tile - 1) / tile, th = (H + tile - 1) / tile;
  int np = tile * tile;
#pragma omp parallel for schedule(dynamic, 1)
  for (int t = 0; t < tw * th; ++t) {
    float px[kMaxTile * kMaxTile], py[kMaxTile * kMaxTile], T[kMaxTile * kMaxTile], done[kMaxTile * kMaxTile];
    float cr[kMaxTile * kMaxTile], cg[kMaxTile * kMaxTile], cb[kMaxTile * kMaxTile];
    int32_t lst[kMaxTile * kMaxTile];
    int bx = (t % tw) * tile, by = (t / tw) * tile;
    tile_fwd_init(bx, by, tile, W, H, px, py, T, done, cr, cg, cb, lst);
    int64_t k0 = offsets[t], k1 = offsets[t + 1];
    for (int64_t k = k0; k < k1; ++k) {
      const float* s = packed + (size_t)ids[k] * kPS;
      const float mx = s[0], my = s[1], A = s[2], B = s[3], C = s[4], o = s[5];
      const float r = s[6], gg = s[7], b = s[8];
      const int32_t kk = (int32_t)k;
      int p0, p1;
      if (!tile_rows_exact(s, bx, by, tile, W, H, &p0, &p1)) continue;
#pragma omp simd
      for (int p = p0; p < p1; ++p) {
        float dx = px[p] - mx, dy = py[p] - my;
        float power = -0.5f * (A * dx * dx + C * dy * dy) - B * dx * dy;
        power = std::max(power, -30.0f);
        float alpha = std::min(kMaxAlpha, o * std::exp(power));
        float Tn = T[p] * (1.0f - alpha);
        int ok = (int)(power <= 0.0f) & (int)(alpha >= kMinAlpha) & (int)(done[p] == 0.0f);
        int term = ok & (int)(Tn < kMinT);
        ok = ok & (term ^ 1);
        float w = ok ? alpha * T[p] : 0.0f;
        cr[p] += w * r;
        cg[p] += w * gg;
        cb[p] += w * b;
        T[p] = ok ? Tn : T[p];
        done[p] = term ? 1.0f : done[p];
        lst[p] = ok ? kk : lst[p];
      }
      if (((k - k0) & 15) == 15) {
        float sd = 0.0f;
        for (int p = 0; p < np; ++p) sd += done[p];
        if (sd >= (float)np) break;
      }
    }
    for (int p = 0; p < np; ++p) {
      int x = bx + p % tile, y = by + p / tile;
      if (x >= W || y >= H) continue;
      int64_t o = (int64_t)y * W + x;
      img[3 * o] = cr[p] + T[p] * bg[0];
      img[3 * o + 1] = cg[p] + T[p] * bg[1];
      img[3 * o + 2] = cb[p] + T[p] * bg[2];
      T_out[o] = T[p];
      last[o] = lst[p];
    }
  }
}

// Gradients of the splats order[0..m) (the packed ones, by their ids): d_means (N, 2), d_conics (N, 3),
// d_colors (N, 3), d_opac (N); rows of splats not in ``order`` are left as they are (the caller zeroes them).
void v2m_backward_p(int m, const float* packed, int W, int H, int tile, const float* bg, const int64_t* offsets,
                    const int32_t* ids, const float* T_fin, const int32_t* last, const float* dimg,
                    const int32_t* order, float* d_means, float* d_conics, float* d_colors, float* d_opac) {
  int tw = (W + tile - 1) / tile, th = (H + tile - 1) / tile;
  int np = tile * tile;
  int nth = v2m_num_threads();
  const int G = 9;  // per packed splat: mx, my, A, B, C, r, g, b, opacity
  std::vector<float> buf((size_t)nth * m * G, 0.0f);
  float* grads = buf.data();
#pragma omp parallel for schedule(dynamic, 1)
  for (int t = 0; t < tw * th; ++t) {
#ifdef _OPENMP
    int ti = omp_get_thread_num();
#else
    int ti = 0;
#endif
    float* acc = grads + (size_t)ti * m * G;
    float px[kMaxTile * kMaxTile], py[kMaxTile * kMaxTile], T[kMaxTile * kMaxTile];
    float sr[kMaxTile * kMaxTile], sg[kMaxTile * kMaxTile], sb[kMaxTile * kMaxTile];
    float dr[kMaxTile * kMaxTile], dg[kMaxTile * kMaxTile], db[kMaxTile * kMaxTile], bgd[kMaxTile * kMaxTile];
    int32_t lst[kMaxTile * kMaxTile];
    int bx = (t % tw) * tile, by = (t / tw) * tile;
    int32_t kmax = tile_bwd_init(bx, by, tile, W, H, T_fin, last, dimg, bg, px, py, T, sr, sg, sb, dr, dg, db, bgd, lst);
    int64_t k0 = offsets[t];
    for (int64_t k = kmax; k >= k0; --k) {
      const int i = ids[k];
      const float* s = packed + (size_t)i * kPS;
      const float mx = s[0], my = s[1], A = s[2], B = s[3], C = s[4], o = s[5];
      const float r = s[6], gg = s[7], b = s[8];
      const int32_t kk = (int32_t)k;
      int p0, p1;
      if (!tile_rows_exact(s, bx, by, tile, W, H, &p0, &p1)) continue;
      float gmx = 0, gmy = 0, gA = 0, gB = 0, gC = 0, gr = 0, ggn = 0, gb = 0, go = 0;
#pragma omp simd reduction(+ : gmx, gmy, gA, gB, gC, gr, ggn, gb, go)
      for (int p = p0; p < p1; ++p) {
        float dx = px[p] - mx, dy = py[p] - my;
        float power = -0.5f * (A * dx * dx + C * dy * dy) - B * dx * dy;
        power = std::max(power, -30.0f);
        float Gv = std::exp(power);
        float araw = o * Gv;
        float alpha = std::min(kMaxAlpha, araw);
        int ok = (int)(kk <= lst[p]) & (int)(power <= 0.0f) & (int)(alpha >= kMinAlpha);
        float om = 1.0f / (1.0f - alpha);
        float Tj = T[p] * om;
        float w = alpha * Tj;
        float dal = (r * Tj - sr[p] * om) * dr[p] + (gg * Tj - sg[p] * om) * dg[p] + (b * Tj - sb[p] * om) * db[p] -
                    bgd[p] * om;
        dal = (araw < kMaxAlpha) ? dal : 0.0f;
        dal = ok ? dal : 0.0f;
        float wk = ok ? w : 0.0f;
        gr += wk * dr[p];
        ggn += wk * dg[p];
        gb += wk * db[p];
        go += Gv * dal;
        float dpow = Gv * o * dal;
        gmx += dpow * (A * dx + B * dy);
        gmy += dpow * (C * dy + B * dx);
        gA += dpow * (-0.5f * dx * dx);
        gB += dpow * (-dx * dy);
        gC += dpow * (-0.5f * dy * dy);
        sr[p] += wk * r;
        sg[p] += wk * gg;
        sb[p] += wk * b;
        T[p] = ok ? Tj : T[p];
      }
      float* a = acc + (size_t)i * G;
      a[0] += gmx; a[1] += gmy; a[2] += gA; a[3] += gB; a[4] += gC;
      a[5] += gr; a[6] += ggn; a[7] += gb; a[8] += go;
    }
  }
#pragma omp parallel for schedule(static)
  for (int i = 0; i < m; ++i) {
    float s[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (int th_i = 0; th_i < nth; ++th_i) {
      const float* a = grads + ((size_t)th_i * m + i) * G;
      for (int j = 0; j < G; ++j) s[j] += a[j];
    }
    const int g = order[i];
    d_means[2 * g] = s[0]; d_means[2 * g + 1] = s[1];
    d_conics[3 * g] = s[2]; d_conics[3 * g + 1] = s[3]; d_conics[3 * g + 2] = s[4];
    d_colors[3 * g] = s[5]; d_colors[3 * g + 1] = s[6]; d_colors[3 * g + 2] = s[7];
    d_opac[g] = s[8];
  }
}

// Mean SSIM of img against ref, both (H, W, C) float32 in the layout of the training images, with a
// separable window win (2r+1 taps) over the valid region only (as the torch version in losses.py:
// a (H-2r) x (W-2r) map per channel); with grad != nullptr also d(mean SSIM)/d(img), (H, W, C).
// One pass: blurred moments, the map and its partial derivatives, then their transposed blur. Every inner
// loop runs along a row of planar copies, so it vectorises.
double v2m_ssim(int H, int W, int C, const float* img, const float* ref, const float* win, int r, float c1,
                float c2, float* grad) {
  const int K = 2 * r + 1, Ho = H - 2 * r, Wo = W - 2 * r;
  if (Ho <= 0 || Wo <= 0) return 0.0;
  const double inv_n = 1.0 / ((double)Ho * Wo * C);
  const float g = (float)inv_n;
  const size_t P = (size_t)H * W, R = (size_t)H * Wo, D = (size_t)Ho * Wo;
  std::vector<float> xs((size_t)C * P), ys((size_t)C * P), rows((size_t)C * 5 * R), dmap((size_t)C * 3 * D),
      back((size_t)C * 3 * R);
#pragma omp parallel for schedule(static)
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      for (int c = 0; c < C; ++c) {
        const size_t q = ((size_t)y * W + x) * C + c, o = c * P + (size_t)y * W + x;
        xs[o] = img[q];
        ys[o] = ref[q];
      }
  double total = 0.0;
#pragma omp parallel for collapse(2) schedule(static)
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H; ++y) {  // row blur of x, y, x^2, y^2, x y
      const float* u = &xs[c * P + (size_t)y * W];
      const float* v = &ys[c * P + (size_t)y * W];
      float* o[5];
      for (int j = 0; j < 5; ++j) {
        o[j] = &rows[(c * 5 + j) * R + (size_t)y * Wo];
        std::fill(o[j], o[j] + Wo, 0.0f);
      }
      for (int k = 0; k < K; ++k) {
        const float w = win[k];
        const float* uk = u + k;
        const float* vk = v + k;
        for (int x = 0; x < Wo; ++x) {
          const float a = uk[x], b = vk[x];
          o[0][x] += w * a; o[1][x] += w * b; o[2][x] += w * a * a; o[3][x] += w * b * b; o[4][x] += w * a * b;
        }
      }
    }
#pragma omp parallel for collapse(2) schedule(static) reduction(+ : total)
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < Ho; ++y) {  // column blur, the map and its derivatives by the three moments of x
      std::vector<float> m(5 * (size_t)Wo, 0.0f);
      for (int k = 0; k < K; ++k) {
        const float w = win[k];
        for (int j = 0; j < 5; ++j) {
          const float* in = &rows[(c * 5 + j) * R + (size_t)(y + k) * Wo];
          float* mj = &m[j * (size_t)Wo];
          for (int x = 0; x < Wo; ++x) mj[x] += w * in[x];
        }
      }
      float* dmx = &dmap[(c * 3 + 0) * D + (size_t)y * Wo];
      float* dxx = &dmap[(c * 3 + 1) * D + (size_t)y * Wo];
      float* dxy = &dmap[(c * 3 + 2) * D + (size_t)y * Wo];
      double sum = 0.0;
      for (int x = 0; x < Wo; ++x) {
        const float mx = m[x], my = m[Wo + x];
        const float vx = m[2 * Wo + x] - mx * mx, vy = m[3 * Wo + x] - my * my, cxy = m[4 * Wo + x] - mx * my;
        const float A1 = 2 * mx * my + c1, A2 = 2 * cxy + c2, B1 = mx * mx + my * my + c1, B2 = vx + vy + c2;
        const float iD = 1.0f / (B1 * B2), S = A1 * A2 * iD;
        sum += S;
        dmx[x] = g * ((2 * my * A2 - 2 * my * A1) * iD - S * (2 * mx / B1 - 2 * mx / B2));
        dxx[x] = g * (-S / B2);
        dxy[x] = g * (2 * A1 * iD);
      }
      total += sum;
    }
  if (grad == nullptr) return total * inv_n;
#pragma omp parallel for collapse(2) schedule(static)
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H; ++y) {  // column pass of the transposed blur: rows y - k of the maps
      for (int j = 0; j < 3; ++j) {
        float* out = &back[(c * 3 + j) * R + (size_t)y * Wo];
        std::fill(out, out + Wo, 0.0f);
        for (int k = 0; k < K; ++k) {
          const int yy = y - k;
          if (yy < 0 || yy >= Ho) continue;
          const float* in = &dmap[(c * 3 + j) * D + (size_t)yy * Wo];
          const float w = win[k];
          for (int x = 0; x < Wo; ++x) out[x] += w * in[x];
        }
      }
    }
#pragma omp parallel for collapse(2) schedule(static)
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H; ++y) {  // row pass, then the chain rule through x, x^2 and x y
      std::vector<float> t(3 * (size_t)W, 0.0f);
      for (int j = 0; j < 3; ++j) {
        const float* in = &back[(c * 3 + j) * R + (size_t)y * Wo];
        float* tj = &t[j * (size_t)W];
        for (int k = 0; k < K; ++k) {
          const float w = win[k];
          float* tk = tj + k;
          for (int x = 0; x < Wo; ++x) tk[x] += w * in[x];
        }
      }
      const float* u = &xs[c * P + (size_t)y * W];
      const float* v = &ys[c * P + (size_t)y * W];
      for (int x = 0; x < W; ++x) grad[((size_t)y * W + x) * C + c] = t[x] + 2 * u[x] * t[W + x] + v[x] * t[2 * W + x];
    }
  return total * inv_n;
}

}  // extern "C"
"""
