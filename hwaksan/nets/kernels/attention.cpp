// Self-attention softmax(q k^T / sqrt(d)) v (Vaswani et al. 2017, eq. 1) in float32 on the CPU,
// forward and backward, one (sample, head) at a time: its whole N x N score matrix stays in the
// core's cache, so nothing is tiled. The products go through oneDNN's batch-reduce GEMM
// micro-kernel (at::native::cpublas::brgemm), which on this AMD CPU runs small float32 products
// ~2x faster than the MKL sgemm that PyTorch's own fp32 flash attention calls. The backward
// recomputes the probabilities from the saved log-sum-exp, as flash attention does (Dao et al.
// 2022, alg. 2), instead of keeping N x N per head.
//
// Layouts: qkv (B, N, 3, H, D), the fused projection's output as it comes; out (B, N, H, D),
// what the output projection reads; lse (B, H, N).
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>

#include <cmath>
#include <limits>
#include <vector>

namespace {

// C (M x N, ldc) = A (M x K, lda) @ B (K x N, ldb), all row-major float32
inline void matmul(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                   int64_t ldb, float* C, int64_t ldc) {
  at::native::cpublas::brgemm(M, N, K, lda, ldb, ldc, false, A, B, C, false);
}

// dst (cols x rows) = src (rows x cols, row stride ld)^T
inline void transpose(const float* src, int64_t rows, int64_t cols, int64_t ld, float* dst) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * ld + c];
}

struct Dims {
  int64_t B, N, H, D, ld;  // ld: row stride of q, k, v inside qkv (3 H D)
};

Dims dims(const torch::Tensor& qkv) {
  TORCH_CHECK(qkv.dim() == 5 && qkv.size(2) == 3 && qkv.is_contiguous() &&
                  qkv.scalar_type() == torch::kFloat,
              "attention kernel: qkv must be a contiguous float32 (B, N, 3, H, D) tensor");
  return {qkv.size(0), qkv.size(1), qkv.size(3), qkv.size(4), 3 * qkv.size(3) * qkv.size(4)};
}

}  // namespace

// -> out (B, N, H, D), lse (B, H, N)
std::vector<torch::Tensor> forward(torch::Tensor qkv) {
  const Dims d = dims(qkv);
  const int64_t N = d.N, H = d.H, D = d.D, HD = H * D;
  const float scale = 1.f / std::sqrt((float)D);
  auto out = torch::empty({d.B, N, H, D}, qkv.options());
  auto lse = torch::empty({d.B, H, N}, qkv.options());
  const float* QKV = qkv.data_ptr<float>();
  float *O = out.data_ptr<float>(), *L = lse.data_ptr<float>();
  at::parallel_for(0, d.B * H, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> kt(D * N), s(N * N);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / H, h = i % H;
      const float* q = QKV + b * N * d.ld + h * D;
      const float *k = q + HD, *v = q + 2 * HD;
      transpose(k, N, D, d.ld, kt.data());
      matmul(N, N, D, q, d.ld, kt.data(), N, s.data(), N);  // scores q k^T
      for (int64_t r = 0; r < N; ++r) {  // softmax of each row, scaled; keep log-sum-exp
        float* row = s.data() + r * N;
        float m = -std::numeric_limits<float>::infinity(), sum = 0.f;
        for (int64_t c = 0; c < N; ++c) m = std::max(m, row[c]);
        m *= scale;
#pragma omp simd reduction(+ : sum)
        for (int64_t c = 0; c < N; ++c) {
          row[c] = std::exp(row[c] * scale - m);
          sum += row[c];
        }
        const float inv = 1.f / sum;
#pragma omp simd
        for (int64_t c = 0; c < N; ++c) row[c] *= inv;
        L[i * N + r] = m + std::log(sum);
      }
      matmul(N, D, N, s.data(), N, v, d.ld, O + b * N * HD + h * D, HD);  // p v
    }
    at::native::cpublas::brgemm_release(false);
  });
  return {out, lse};
}

// dout (B, N, H, D) -> dqkv (B, N, 3, H, D). Works with transposed scores (key rows, query
// columns), so dv = p^T dout and dk = ds^T q are written straight into dqkv's rows.
torch::Tensor backward(torch::Tensor dout, torch::Tensor qkv, torch::Tensor out,
                       torch::Tensor lse) {
  const Dims d = dims(qkv);
  const int64_t N = d.N, H = d.H, D = d.D, HD = H * D;
  TORCH_CHECK(dout.is_contiguous() && dout.sizes() == out.sizes(), "attention kernel: bad dout");
  const float scale = 1.f / std::sqrt((float)D);
  auto dqkv = torch::empty_like(qkv);
  const float *QKV = qkv.data_ptr<float>(), *DO = dout.data_ptr<float>();
  const float *O = out.data_ptr<float>(), *L = lse.data_ptr<float>();
  float* DQKV = dqkv.data_ptr<float>();
  at::parallel_for(0, d.B * H, 1, [&](int64_t i0, int64_t i1) {
    // dqt holds k^T ds^T, (D, N): its own buffer, since D > N (few tokens, wide heads: 16 tokens
    // of 32 channels in the shipped 64 px model's middle block) would overflow an N x N one
    std::vector<float> t(D * N), pt(N * N), dpt(N * N), dqt(D * N), delta(N);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / H, h = i % H;
      const float* q = QKV + b * N * d.ld + h * D;
      const float *k = q + HD, *v = q + 2 * HD;
      const float* g = DO + b * N * HD + h * D;  // dout rows, stride HD
      const float* o = O + b * N * HD + h * D;
      float* dq = DQKV + b * N * d.ld + h * D;
      float *dk = dq + HD, *dv = dq + 2 * HD;
      const float* lse_i = L + i * N;
      for (int64_t r = 0; r < N; ++r) {  // delta_r = sum_c p_rc dp_rc = dout_r . out_r
        float dl = 0.f;
#pragma omp simd reduction(+ : dl)
        for (int64_t e = 0; e < D; ++e) dl += g[r * HD + e] * o[r * HD + e];
        delta[r] = dl;
      }
      // p^T = exp(k q^T scale - lse[column])
      transpose(q, N, D, d.ld, t.data());
      matmul(N, N, D, k, d.ld, t.data(), N, pt.data(), N);
      for (int64_t r = 0; r < N; ++r) {
        float* row = pt.data() + r * N;
#pragma omp simd
        for (int64_t c = 0; c < N; ++c) row[c] = std::exp(row[c] * scale - lse_i[c]);
      }
      matmul(N, D, N, pt.data(), N, g, HD, dv, d.ld);  // dv = p^T dout
      // dp^T = v dout^T; ds^T = p^T (dp^T - delta[column]) scale, kept in dpt
      transpose(g, N, D, HD, t.data());
      matmul(N, N, D, v, d.ld, t.data(), N, dpt.data(), N);
      for (int64_t r = 0; r < N; ++r) {
        float* drow = dpt.data() + r * N;
        const float* prow = pt.data() + r * N;
#pragma omp simd
        for (int64_t c = 0; c < N; ++c) drow[c] = prow[c] * (drow[c] - delta[c]) * scale;
      }
      matmul(N, D, N, dpt.data(), N, q, d.ld, dk, d.ld);  // dk = ds^T q
      // dq^T = k^T ds^T, then into dq's rows
      transpose(k, N, D, d.ld, t.data());
      matmul(D, N, N, t.data(), N, dpt.data(), N, dqt.data(), N);
      for (int64_t r = 0; r < N; ++r)
        for (int64_t e = 0; e < D; ++e) dq[r * d.ld + e] = dqt[e * N + r];
    }
    at::native::cpublas::brgemm_release(false);
  });
  return dqkv;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "self-attention forward over a fused (B, N, 3, H, D) qkv");
  m.def("backward", &backward, "self-attention backward: dout -> dqkv");
}
