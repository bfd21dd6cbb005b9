"""C++ source of the CPU splat kernels (compiled at first use by :mod:`vid2model.splat.kernels`).

Kept as a Python string so it ships inside the wheel with no package-data rules.
"""

SOURCE = r"""
// Tile-based Gaussian splat compositing for CPU (forward + backward), OpenMP over tiles.
//
// Conventions (shared with vid2model/splat/reference.py):
//   pixel (x, y) has its centre at (x + 0.5, y + 0.5) (COLMAP / synth convention);
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
  float a = std::ceil(m - e - 0.5f), b = std::floor(m + e - 0.5f);
  if (b < 0.0f || a > (float)(size - 1) || a > b) return false;
  *lo = a < 0.0f ? 0 : (int)a;
  *hi = b > (float)(size - 1) ? size - 1 : (int)b;
  return true;
}

// Pixel-index range [p0, p1) of the tile rows (starting at image row by) that a splat can reach:
// only those rows are visited (splat-major loops stay contiguous and vectorised).
static inline bool tile_rows(float my, float ey, int by, int tile, int H, int* p0, int* p1) {
  int y0, y1;
  if (!pixel_range(my, ey, H, &y0, &y1)) return false;
  y0 = std::max(y0, by);
  y1 = std::min(y1, by + tile - 1);
  if (y0 > y1) return false;
  *p0 = (y0 - by) * tile;
  *p1 = (y1 - by + 1) * tile;
  return true;
}

extern "C" {

int v2m_num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// counts[t] += number of splats touching tile t. Returns the total number of (tile, splat) pairs.
int64_t v2m_bin_count(int n, const int32_t* order, const float* means, const float* ext, int W, int H,
                      int tile, int32_t* counts) {
  int tw = (W + tile - 1) / tile;
  int64_t total = 0;
  for (int i = 0; i < n; ++i) {
    int g = order[i];
    int x0, x1, y0, y1;
    if (!pixel_range(means[2 * g], ext[2 * g], W, &x0, &x1)) continue;
    if (!pixel_range(means[2 * g + 1], ext[2 * g + 1], H, &y0, &y1)) continue;
    for (int ty = y0 / tile; ty <= y1 / tile; ++ty)
      for (int tx = x0 / tile; tx <= x1 / tile; ++tx) {
        counts[ty * tw + tx]++;
        total++;
      }
  }
  return total;
}

// ids[offsets[t] ...] = splat ids of tile t, in the given (front-to-back) order.
void v2m_bin_fill(int n, const int32_t* order, const float* means, const float* ext, int W, int H, int tile,
                  const int64_t* offsets, int32_t* ids) {
  int tw = (W + tile - 1) / tile, th = (H + tile - 1) / tile;
  std::vector<int64_t> cur(offsets, offsets + tw * th);
  for (int i = 0; i < n; ++i) {
    int g = order[i];
    int x0, x1, y0, y1;
    if (!pixel_range(means[2 * g], ext[2 * g], W, &x0, &x1)) continue;
    if (!pixel_range(means[2 * g + 1], ext[2 * g + 1], H, &y0, &y1)) continue;
    for (int ty = y0 / tile; ty <= y1 / tile; ++ty)
      for (int tx = x0 / tile; tx <= x1 / tile; ++tx) ids[cur[ty * tw + tx]++] = g;
  }
}

// img: (H, W, 3); T_out: (H, W) final transmittance; last: (H, W) index into ids of the last splat used.
void v2m_forward(const float* means, const float* conics, const float* colors, const float* opac, const float* ext,
                 int W, int H,
                 int tile, const float* bg, const int64_t* offsets, const int32_t* ids, float* img, float* T_out,
                 int32_t* last) {
  int tw = (W + tile - 1) / tile, th = (H + tile - 1) / tile;
  int np = tile * tile;
#pragma omp parallel for schedule(dynamic, 1)
  for (int t = 0; t < tw * th; ++t) {
    float px[kMaxTile * kMaxTile], py[kMaxTile * kMaxTile], T[kMaxTile * kMaxTile], done[kMaxTile * kMaxTile];
    float cr[kMaxTile * kMaxTile], cg[kMaxTile * kMaxTile], cb[kMaxTile * kMaxTile];
    int32_t lst[kMaxTile * kMaxTile];
    int bx = (t % tw) * tile, by = (t / tw) * tile;
    for (int p = 0; p < np; ++p) {
      int x = bx + p % tile, y = by + p / tile;
      px[p] = x + 0.5f;
      py[p] = y + 0.5f;
      T[p] = 1.0f;
      done[p] = (x < W && y < H) ? 0.0f : 1.0f;
      cr[p] = cg[p] = cb[p] = 0.0f;
      lst[p] = -1;
    }
    int64_t k0 = offsets[t], k1 = offsets[t + 1];
    for (int64_t k = k0; k < k1; ++k) {
      int g = ids[k];
      const float mx = means[2 * g], my = means[2 * g + 1];
      const float A = conics[3 * g], B = conics[3 * g + 1], C = conics[3 * g + 2], o = opac[g];
      const float r = colors[3 * g], gg = colors[3 * g + 1], b = colors[3 * g + 2];
      const int32_t kk = (int32_t)k;
      int p0, p1;
      if (!tile_rows(my, ext[2 * g + 1], by, tile, H, &p0, &p1)) continue;
#pragma omp simd
      for (int p = p0; p < p1; ++p) {
        float dx = px[p] - mx, dy = py[p] - my;
        float power = -0.5f * (A * dx * dx + C * dy * dy) - B * dx * dy;
        power = std::max(power, -30.0f);  // exp(-30) is far below 1/255; keeps vector expf on its fast path
        float alpha = std::min(kMaxAlpha, o * std::exp(power));
        float Tn = T[p] * (1.0f - alpha);
        // bitwise (not short-circuit) logic so the loop stays branch-free and vectorises
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
        float s = 0.0f;
        for (int p = 0; p < np; ++p) s += done[p];
        if (s >= (float)np) break;
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

// Gradients of a loss L given dL/dimg (H, W, 3). Outputs are overwritten:
// d_means (N, 2), d_conics (N, 3), d_colors (N, 3), d_opac (N).
void v2m_backward(int n, const float* means, const float* conics, const float* colors, const float* opac,
                  const float* ext, int W, int H, int tile, const float* bg, const int64_t* offsets, const int32_t* ids, const float* T_fin,
                  const int32_t* last, const float* dimg, float* d_means, float* d_conics, float* d_colors,
                  float* d_opac) {
  int tw = (W + tile - 1) / tile, th = (H + tile - 1) / tile;
  int np = tile * tile;
  int nth = v2m_num_threads();
  const int G = 9;  // per splat: mx, my, A, B, C, r, g, b, opacity
  std::vector<float> buf((size_t)nth * n * G, 0.0f);
#pragma omp parallel for schedule(dynamic, 1)
  for (int t = 0; t < tw * th; ++t) {
#ifdef _OPENMP
    float* acc = buf.data() + (size_t)omp_get_thread_num() * n * G;
#else
    float* acc = buf.data();
#endif
    float px[kMaxTile * kMaxTile], py[kMaxTile * kMaxTile], T[kMaxTile * kMaxTile];
    float sr[kMaxTile * kMaxTile], sg[kMaxTile * kMaxTile], sb[kMaxTile * kMaxTile];
    float dr[kMaxTile * kMaxTile], dg[kMaxTile * kMaxTile], db[kMaxTile * kMaxTile], bgd[kMaxTile * kMaxTile];
    int32_t lst[kMaxTile * kMaxTile];
    int bx = (t % tw) * tile, by = (t / tw) * tile;
    int32_t kmax = -1;
    for (int p = 0; p < np; ++p) {
      int x = bx + p % tile, y = by + p / tile;
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
    int64_t k0 = offsets[t];
    for (int64_t k = kmax; k >= k0; --k) {
      int g = ids[k];
      const float mx = means[2 * g], my = means[2 * g + 1];
      const float A = conics[3 * g], B = conics[3 * g + 1], C = conics[3 * g + 2], o = opac[g];
      const float r = colors[3 * g], gg = colors[3 * g + 1], b = colors[3 * g + 2];
      const int32_t kk = (int32_t)k;
      int p0, p1;
      if (!tile_rows(my, ext[2 * g + 1], by, tile, H, &p0, &p1)) continue;
      float gmx = 0, gmy = 0, gA = 0, gB = 0, gC = 0, gr = 0, ggn = 0, gb = 0, go = 0;
#pragma omp simd reduction(+ : gmx, gmy, gA, gB, gC, gr, ggn, gb, go)
      for (int p = p0; p < p1; ++p) {
        float dx = px[p] - mx, dy = py[p] - my;
        float power = -0.5f * (A * dx * dx + C * dy * dy) - B * dx * dy;
        power = std::max(power, -30.0f);  // exp(-30) is far below 1/255; keeps vector expf on its fast path
        float Gv = std::exp(power);
        float araw = o * Gv;
        float alpha = std::min(kMaxAlpha, araw);
        int ok = (int)(kk <= lst[p]) & (int)(power <= 0.0f) & (int)(alpha >= kMinAlpha);
        float om = 1.0f / (1.0f - alpha);
        float Tj = T[p] * om;  // transmittance in front of this splat
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
      float* a = acc + (size_t)g * G;
      a[0] += gmx; a[1] += gmy; a[2] += gA; a[3] += gB; a[4] += gC;
      a[5] += gr; a[6] += ggn; a[7] += gb; a[8] += go;
    }
  }
#pragma omp parallel for schedule(static)
  for (int g = 0; g < n; ++g) {
    float s[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (int th_i = 0; th_i < nth; ++th_i) {
      const float* a = buf.data() + ((size_t)th_i * n + g) * G;
      for (int j = 0; j < G; ++j) s[j] += a[j];
    }
    d_means[2 * g] = s[0]; d_means[2 * g + 1] = s[1];
    d_conics[3 * g] = s[2]; d_conics[3 * g + 1] = s[3]; d_conics[3 * g + 2] = s[4];
    d_colors[3 * g] = s[5]; d_colors[3 * g + 1] = s[6]; d_colors[3 * g + 2] = s[7];
    d_opac[g] = s[8];
  }
}

}  // extern "C"
"""
