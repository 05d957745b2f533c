// GroupNorm (Wu & He 2018) of channels-last float32 maps, optionally followed by SiLU, fused into
// one pass that reads a sample's map and one that writes it, forward and backward.
//
// Shapes: x (B, N, C) is a channels-last (B, C, H, W) map seen as N = H*W rows of C channels.
// Per (sample, channel) arrays: weight and bias (B, C) -- the module's affine, or ADM's
// scale-shift folded into it -- and an optional `add` (B, C) added to x before normalizing (the
// DDPM ResBlock's timestep embedding). Each sample's map (a few hundred KB) stays in the core's
// cache between the reduction pass and the write pass; the reference is F.group_norm + F.silu
// (hwaksan/nets/norm.py), and tests/test_norm.py holds the two together.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

inline float sigmoid(float y) { return 1.f / (1.f + std::exp(-y)); }

struct Maps {  // raw pointers for one call; `add` may be null
  int64_t B, N, C, groups, per;
  const float* add;
};

Maps shape(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
           const torch::Tensor& add, int64_t groups) {
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous() && x.scalar_type() == torch::kFloat,
              "group_norm kernel: x must be a contiguous float32 (B, N, C) tensor");
  TORCH_CHECK(x.size(2) % groups == 0, "group_norm kernel: channels not divisible by groups");
  for (const auto* t : {&weight, &bias, &add}) {
    if (t == &add && add.numel() == 0) continue;  // no add
    TORCH_CHECK(t->dim() == 2 && t->size(0) == x.size(0) && t->size(1) == x.size(2) &&
                    t->is_contiguous() && t->scalar_type() == torch::kFloat,
                "group_norm kernel: weight, bias and add must be contiguous float32 (B, C)");
  }
  const float* a = add.numel() ? add.data_ptr<float>() : nullptr;
  return {x.size(0), x.size(1), x.size(2), groups, x.size(2) / groups, a};
}

}  // namespace

// -> z (B, N, C), mean (B, G), rstd (B, G)
std::vector<torch::Tensor> forward(torch::Tensor x, torch::Tensor weight, torch::Tensor bias,
                                   torch::Tensor add, int64_t groups, double eps, bool silu) {
  const Maps m = shape(x, weight, bias, add, groups);
  const int64_t N = m.N, C = m.C, G = m.groups, per = m.per;
  auto z = torch::empty_like(x);
  auto mean = torch::empty({m.B, G}, x.options());
  auto rstd = torch::empty({m.B, G}, x.options());
  const float *X = x.data_ptr<float>(), *W = weight.data_ptr<float>(), *Bi = bias.data_ptr<float>();
  float *Z = z.data_ptr<float>(), *Mu = mean.data_ptr<float>(), *R = rstd.data_ptr<float>();
  at::parallel_for(0, m.B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> e(C), k(C), s(C), ss(C), scale(C), offset(C);
    for (int64_t b = b0; b < b1; ++b) {
      const float* xb = X + b * N * C;
      const float* bb = Bi + b * C;
      float* zb = Z + b * N * C;
      for (int64_t c = 0; c < C; ++c) {
        e[c] = m.add ? m.add[b * C + c] : 0.f;
        k[c] = xb[c] + e[c];  // shift the sums by the first row: no cancellation in the variance
        s[c] = ss[c] = 0.f;
      }
      for (int64_t n = 0; n < N; ++n) {
        const float* row = xb + n * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const float d = row[c] + e[c] - k[c];
          s[c] += d;
          ss[c] += d * d;
        }
      }
      for (int64_t g = 0; g < G; ++g) {
        double sum = 0, sq = 0;
        for (int64_t c = g * per; c < (g + 1) * per; ++c) {
          sum += (double)s[c] + (double)k[c] * N;
          sq += (double)ss[c] + 2.0 * k[c] * s[c] + (double)k[c] * k[c] * N;
        }
        const double count = (double)N * per, mu = sum / count;
        const double var = std::max(sq / count - mu * mu, 0.0);
        const float r = (float)(1.0 / std::sqrt(var + eps));
        Mu[b * G + g] = (float)mu;
        R[b * G + g] = r;
        for (int64_t c = g * per; c < (g + 1) * per; ++c) {  // y = (x + offset) scale + bias
          scale[c] = r * W[b * C + c];
          offset[c] = e[c] - (float)mu;  // centred first: no cancellation for large means
        }
      }
      for (int64_t n = 0; n < N; ++n) {
        const float* row = xb + n * C;
        float* out = zb + n * C;
        if (silu) {
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) {
            const float y = (row[c] + offset[c]) * scale[c] + bb[c];
            out[c] = y * sigmoid(y);
          }
        } else {
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) out[c] = (row[c] + offset[c]) * scale[c] + bb[c];
        }
      }
    }
  });
  return {z, mean, rstd};
}

// -> dx (B, N, C), dweight (B, C), dbias (B, C), dadd (B, C) (empty when there was no add)
template <bool kSilu>  // a template, so the inner loops have no branch and vectorize
std::vector<torch::Tensor> backward_impl(torch::Tensor dz, torch::Tensor x, torch::Tensor weight,
                                         torch::Tensor bias, torch::Tensor add,
                                         torch::Tensor mean, torch::Tensor rstd, int64_t groups) {
  const Maps m = shape(x, weight, bias, add, groups);
  TORCH_CHECK(dz.sizes() == x.sizes() && dz.is_contiguous(), "group_norm kernel: bad dz");
  const int64_t N = m.N, C = m.C, G = m.groups, per = m.per;
  auto dx = torch::empty_like(x);
  auto dweight = torch::empty({m.B, C}, x.options());
  auto dbias = torch::empty({m.B, C}, x.options());
  auto dadd = m.add ? torch::empty({m.B, C}, x.options()) : torch::empty({0}, x.options());
  const float *X = x.data_ptr<float>(), *DZ = dz.data_ptr<float>();
  const float *W = weight.data_ptr<float>(), *Bi = bias.data_ptr<float>();
  const float *Mu = mean.data_ptr<float>(), *R = rstd.data_ptr<float>();
  float *DX = dx.data_ptr<float>(), *DW = dweight.data_ptr<float>(), *DB = dbias.data_ptr<float>();
  float* DA = m.add ? dadd.data_ptr<float>() : nullptr;
  at::parallel_for(0, m.B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> e(C), scale(C), offset(C), sdy(C), sdyx(C), sx(C), a(C), bx(C), c0(C);
    for (int64_t b = b0; b < b1; ++b) {
      const float* xb = X + b * N * C;
      const float* dzb = DZ + b * N * C;
      const float* bb = Bi + b * C;
      float* dxb = DX + b * N * C;
      for (int64_t c = 0; c < C; ++c) {
        const float r = R[b * G + c / per], mu = Mu[b * G + c / per];
        e[c] = m.add ? m.add[b * C + c] : 0.f;
        scale[c] = r * W[b * C + c];
        offset[c] = e[c] - mu;
        sdy[c] = sdyx[c] = sx[c] = 0.f;
      }
      // pass 1: dy (the gradient at the norm's output) into dx; per-channel sums of dy,
      // dy * (x + offset) and x + offset, with offset = add - mean (centred: no cancellation)
      for (int64_t n = 0; n < N; ++n) {
        const float* row = xb + n * C;
        const float* g = dzb + n * C;
        float* d = dxb + n * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const float xc = row[c] + offset[c];
          float dy = g[c];
          if constexpr (kSilu) {
            const float y = xc * scale[c] + bb[c], sg = sigmoid(y);
            dy *= sg * (1.f + y * (1.f - sg));
          }
          d[c] = dy;
          sdy[c] += dy;
          sdyx[c] += dy * xc;
          sx[c] += xc;
        }
      }
      // per group: dx = a dy + bx (x + offset) + c0, GroupNorm's backward as an affine map
      for (int64_t g = 0; g < G; ++g) {
        const float r = R[b * G + g];
        double m1 = 0, m2 = 0;
        for (int64_t c = g * per; c < (g + 1) * per; ++c) {
          const float dyxhat = r * sdyx[c];  // sum of dy * xhat, xhat = (x + offset) r
          DW[b * C + c] = dyxhat;
          DB[b * C + c] = sdy[c];
          m1 += (double)W[b * C + c] * sdy[c];
          m2 += (double)W[b * C + c] * dyxhat;
        }
        const float inv = 1.f / (float)(N * per), f1 = (float)m1 * inv, f2 = (float)m2 * inv;
        for (int64_t c = g * per; c < (g + 1) * per; ++c) {
          a[c] = r * W[b * C + c];
          bx[c] = -r * r * f2;
          c0[c] = -r * f1;
          if (DA) DA[b * C + c] = a[c] * sdy[c] + bx[c] * sx[c] + (float)N * c0[c];  // sum of dx
        }
      }
      // pass 2: dx over the cached dy
      for (int64_t n = 0; n < N; ++n) {
        const float* row = xb + n * C;
        float* d = dxb + n * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) d[c] = a[c] * d[c] + bx[c] * (row[c] + offset[c]) + c0[c];
      }
    }
  });
  return {dx, dweight, dbias, dadd};
}

std::vector<torch::Tensor> backward(torch::Tensor dz, torch::Tensor x, torch::Tensor weight,
                                    torch::Tensor bias, torch::Tensor add, torch::Tensor mean,
                                    torch::Tensor rstd, int64_t groups, bool silu) {
  return silu ? backward_impl<true>(dz, x, weight, bias, add, mean, rstd, groups)
              : backward_impl<false>(dz, x, weight, bias, add, mean, rstd, groups);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "GroupNorm (+ SiLU) forward over channels-last float32 maps");
  m.def("backward", &backward, "GroupNorm (+ SiLU) backward over channels-last float32 maps");
}
