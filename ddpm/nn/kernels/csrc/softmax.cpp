// Softmax over the last dimension, in place, and its backward, for the score matrices of the
// chunked CPU attention (ddpm/nn/cpu_attention.py; glue in ddpm/nn/kernels). Math in fp32 whatever the storage type.
//
// Why a kernel: torch's CPU softmax on bf16 scores took a third of the attention's time in a
// training step (bench/RESULTS.md "engine"); this one reads the row once into an fp32 scratch
// row that stays in L1 and uses a vectorised exp.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "vec_math.h"

namespace {

using at::Tensor;
using ddpm_native::load;
using ddpm_native::store;

constexpr int kLanes = 16;  // independent accumulators, so that gcc vectorises the sums

// Floats mapped to int32 in the same order (an involution), so that the row maximum is an
// integer max, which gcc vectorises without -ffinite-math-only. A NaN maps above +inf: a row
// holding one gives NaN probabilities, as it should.
inline int32_t ordered(float v) {
  int32_t i;
  std::memcpy(&i, &v, sizeof i);
  return i ^ ((i >> 31) & 0x7FFFFFFF);
}
inline float from_ordered(int32_t i) {
  i ^= (i >> 31) & 0x7FFFFFFF;
  float v;
  std::memcpy(&v, &i, sizeof v);
  return v;
}

float lane_sum(const float* v, int64_t n) {
  float acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int k = 0; k < kLanes; ++k) acc[k] += v[j + k];
  float total = 0.0f;
  for (; j < n; ++j) total += v[j];
  for (int k = 0; k < kLanes; ++k) total += acc[k];
  return total;
}

template <typename T>
void softmax_rows(T* data, int64_t rows, int64_t n) {
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / n), [&](int64_t begin, int64_t end) {
    std::vector<float> e(n);  // one row in fp32, in L1 for any n a U-Net level has
    float* ep = e.data();
    for (int64_t r = begin; r < end; ++r) {
      T* row = data + r * n;
      int32_t top = std::numeric_limits<int32_t>::min();
      for (int64_t j = 0; j < n; ++j) {
        ep[j] = load(row, j);
        top = std::max(top, ordered(ep[j]));
      }
      const float m = from_ordered(top);  // a row of only -inf gives NaN, as torch's does
      for (int64_t j = 0; j < n; ++j) ep[j] = ddpm_native::exp_for<T>(ep[j] - m);
      const float inv = 1.0f / lane_sum(ep, n);
      for (int64_t j = 0; j < n; ++j) store(row, j, ep[j] * inv);
    }
  });
}

// dp := p * (dp - sum(dp * p)) per row.
template <typename T>
void softmax_backward_rows(T* dp, const T* p, int64_t rows, int64_t n) {
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / n), [&](int64_t begin, int64_t end) {
    std::vector<float> prod(n);
    float* pp = prod.data();
    for (int64_t r = begin; r < end; ++r) {
      T* d = dp + r * n;
      const T* pr = p + r * n;
      for (int64_t j = 0; j < n; ++j) pp[j] = load(d, j) * load(pr, j);
      const float dot = lane_sum(pp, n);
      for (int64_t j = 0; j < n; ++j) store(d, j, load(pr, j) * (load(d, j) - dot));
    }
  });
}

void check_rows(const Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous() && t.dim() >= 1 && t.size(-1) > 0,
              "softmax: ", name, " must be a non-empty contiguous CPU tensor");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16,
              "softmax: the native kernel takes float32 or bfloat16, got ", t.scalar_type());
}

Tensor softmax_(Tensor s) {
  check_rows(s, "scores");
  const int64_t n = s.size(-1), rows = s.numel() / n;
  if (s.scalar_type() == at::kFloat)
    softmax_rows(s.data_ptr<float>(), rows, n);
  else
    softmax_rows(reinterpret_cast<uint16_t*>(s.data_ptr()), rows, n);
  return s;
}

Tensor softmax_backward_(Tensor dp, const Tensor& p) {
  check_rows(dp, "grad");
  check_rows(p, "probabilities");
  TORCH_CHECK(dp.sizes() == p.sizes() && dp.scalar_type() == p.scalar_type(),
              "softmax_backward: grad and probabilities differ in shape or dtype");
  const int64_t n = dp.size(-1), rows = dp.numel() / n;
  if (dp.scalar_type() == at::kFloat)
    softmax_backward_rows(dp.data_ptr<float>(), p.data_ptr<float>(), rows, n);
  else
    softmax_backward_rows(reinterpret_cast<uint16_t*>(dp.data_ptr()),
                          reinterpret_cast<const uint16_t*>(p.data_ptr()), rows, n);
  return dp;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(ddpm_native, m) {
  m.def("softmax_(Tensor(a!) scores) -> Tensor(a!)", &softmax_);
  m.def("softmax_backward_(Tensor(a!) grad, Tensor probs) -> Tensor(a!)", &softmax_backward_);
}
