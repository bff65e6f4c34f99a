// GroupNorm + per-sample scale/shift + SiLU for channels-last CPU tensors, forward and backward,
// each a fixed number of passes over memory (forward: statistics, then apply; backward: channel
// sums, then dx). Built on first use by ddpm/nn/kernels/loader.py; ddpm/nn/kernels/norm_act.py holds
// the autograd node, ddpm/nn/norm_act.py the same math in PyTorch ops for what this file does not take.
//
// Why a kernel: the same node in eager PyTorch ops is ~60 small ops per call and 8 memory passes
// (its share of a training step: bench/RESULTS.md "engine").
//
// Layout: x is (B, C, *S) with channels-last strides, seen here as rows of C values: row r =
// b * N + n for the N spatial positions. Math per sample b, channel c in group g:
//   y = (x - mean_g) * rstd_g;  z = y * A + Bv  (A = gamma (1 + scale), Bv = beta (1 + scale) + shift)
//   out = silu(z) or z
// Backward from dz = silu'(z) * grad:  S1 = sum_n dz,  S2 = sum_n dz y  (per b, c),
//   dx = rstd * (A dz - mean_g(A S1) - y mean_g(A S2)).
// Statistics accumulate in fp32 over blocks of 64 rows and in fp64 across blocks, so neither a
// long map nor a large mean loses precision; the variance is E[x^2] - mean^2 in fp64.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "vec_math.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <tuple>
#include <vector>

namespace {

using at::Tensor;

constexpr int64_t kBlockRows = 64;
constexpr int64_t kKeepDzElems = int64_t(1) << 21;  // 8 MB of fp32 dz: within the L3 cache

using ddpm_native::load;
using ddpm_native::store;
using ddpm_native::sigmoid;

struct Shape {
  int64_t B, N, C, G;
};

Shape shape_of(const Tensor& x, int64_t groups) {
  TORCH_CHECK(x.dim() >= 3, "group_norm_act: x must be (B, C, *spatial), got ", x.dim(), " dims");
  const int64_t B = x.size(0), C = x.size(1);
  TORCH_CHECK(groups > 0 && C % groups == 0, "group_norm_act: ", C, " channels do not split into ", groups, " groups");
  return {B, x.numel() / std::max<int64_t>(B * C, 1), C, groups};
}

// (B, C, *S) channels-last -> the same memory as (B, *S, C) contiguous (a copy only if it is not).
Tensor rows_view(const Tensor& t) { return t.movedim(1, -1).contiguous(); }

// A fresh tensor of x's shape with channels-last strides, and its data as rows.
std::pair<Tensor, Tensor> empty_channels_last(const Tensor& x) {
  std::vector<int64_t> sizes(x.sizes().begin(), x.sizes().end());
  std::rotate(sizes.begin() + 1, sizes.begin() + 2, sizes.end());  // (B, *S, C)
  Tensor rows = at::empty(sizes, x.options());
  return {rows.movedim(-1, 1), rows};
}

std::vector<float> per_sample_channel(const std::optional<Tensor>& t, const Shape& s, float fill, bool per_sample) {
  const int64_t n = per_sample ? s.B * s.C : s.C;
  std::vector<float> out(n, fill);
  if (t.has_value() && t->defined()) {
    Tensor f = t->to(at::kFloat).contiguous();
    TORCH_CHECK(f.numel() == n, "group_norm_act: expected ", n, " values, got ", f.numel());
    std::memcpy(out.data(), f.data_ptr<float>(), n * sizeof(float));
  }
  return out;
}

// The per-(b, c) factors A = gamma (1 + scale) and Bv = beta (1 + scale) + shift.
void affine_factors(const std::optional<Tensor>& weight, const std::optional<Tensor>& bias,
                    const std::optional<Tensor>& scale, const std::optional<Tensor>& shift, const Shape& s,
                    std::vector<float>& a, std::vector<float>& bv) {
  auto gamma = per_sample_channel(weight, s, 1.0f, false);
  auto beta = per_sample_channel(bias, s, 0.0f, false);
  auto sc = per_sample_channel(scale, s, 0.0f, true);
  auto sh = per_sample_channel(shift, s, 0.0f, true);
  a.resize(s.B * s.C);
  bv.resize(s.B * s.C);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t c = 0; c < s.C; ++c) {
      const int64_t i = b * s.C + c;
      a[i] = gamma[c] * (1.0f + sc[i]);
      bv[i] = beta[c] * (1.0f + sc[i]) + sh[i];
    }
}

int64_t grain_rows(int64_t C) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(C, 1)); }

// The rows cut into a fixed number of parts, one per thread. Every pass over a map uses the same
// cut, so (with OpenMP's static assignment of parts to threads) the backward's second pass reads
// the dz a thread wrote in the first pass from that core's own cache; indexing per-part state by
// part rather than by thread id also keeps it safe inside a nested parallel region.
int64_t part_count(const Shape& s) {
  const int64_t rows = s.B * s.N, grain = grain_rows(s.C);
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), (rows + grain - 1) / grain));
}

template <typename PartFn>
void for_each_part(const Shape& s, PartFn fn) {
  const int64_t rows = s.B * s.N, parts = part_count(s);
  at::parallel_for(0, parts, 1, [&](int64_t first, int64_t last) {
    for (int64_t part = first; part < last; ++part) fn(part, rows * part / parts, rows * (part + 1) / parts);
  });
}

// Runs fn(b, first_row, end_row, sum1, sum2) over blocks of at most kBlockRows rows of one
// sample. Each part has its own fp64 totals (2 x B x C) that take its blocks' fp32 sums; the
// parts' totals are then added in order, so the result is the same from run to run.
template <typename BlockFn>
std::vector<double> blocked_channel_sums(const Shape& s, BlockFn fn) {
  const int64_t per = 2 * s.B * s.C, parts = part_count(s);
  std::vector<double> partial(parts * per, 0.0);
  for_each_part(s, [&](int64_t part, int64_t begin, int64_t end) {
    std::vector<float> acc(2 * s.C);
    double* tot = partial.data() + part * per;
    for (int64_t r = begin; r < end;) {
      const int64_t b = r / s.N, stop = std::min({end, (b + 1) * s.N, r + kBlockRows});
      std::fill(acc.begin(), acc.end(), 0.0f);
      fn(b, r, stop, acc.data(), acc.data() + s.C);
      double* t1 = tot + b * s.C;
      double* t2 = tot + s.B * s.C + b * s.C;
      for (int64_t c = 0; c < s.C; ++c) {
        t1[c] += acc[c];
        t2[c] += acc[s.C + c];
      }
      r = stop;
    }
  });
  for (int64_t part = 1; part < parts; ++part)
    for (int64_t i = 0; i < per; ++i) partial[i] += partial[part * per + i];
  partial.resize(per);
  return partial;
}

template <typename T>
std::vector<double> moments(const T* x, const Shape& s) {
  const int64_t C = s.C;
  return blocked_channel_sums(s, [&](int64_t, int64_t r0, int64_t r1, float* sum, float* sq) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* row = x + r * C;
      for (int64_t c = 0; c < C; ++c) {
        const float v = load(row, c);
        sum[c] += v;
        sq[c] += v * v;
      }
    }
  });
}

template <typename T>
void apply(const T* x, T* out, const float* za, const float* zb, const Shape& s, bool act) {
  const int64_t C = s.C;
  for_each_part(s, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / s.N;
      const float *a = za + b * C, *bb = zb + b * C;
      const T* xr = x + r * C;
      T* o = out + r * C;
      if (act) {
        for (int64_t c = 0; c < C; ++c) {
          const float z = load(xr, c) * a[c] + bb[c];
          store(o, c, z * sigmoid<T>(z));
        }
      } else {
        for (int64_t c = 0; c < C; ++c) store(o, c, load(xr, c) * a[c] + bb[c]);
      }
    }
  });
}

// dz at one element: grad through the SiLU (recomputed from x) or grad itself.
template <typename T>
inline float dz_at(float g, float x, float a, float b, bool act) {
  if (!act) return g;
  const float z = x * a + b, sg = sigmoid<T>(z);
  return g * sg * (1.0f + z * (1.0f - sg));
}

// Pass 1 of the backward: S1, S2 per (b, c). With dz_out it also keeps dz (fp32) for pass 2,
// which then skips recomputing the SiLU's derivative.
template <typename T>
std::vector<double> grad_sums(const T* g, const T* x, const float* za, const float* zb, const float* ry,
                              const float* my, const Shape& s, bool act, float* dz_out) {
  const int64_t C = s.C;
  return blocked_channel_sums(s, [&](int64_t b, int64_t r0, int64_t r1, float* __restrict s1,
                                     float* __restrict s2) {
    const float *a = za + b * C, *bb = zb + b * C, *r_ = ry + b * C, *m = my + b * C;
    for (int64_t r = r0; r < r1; ++r) {
      const T *gr = g + r * C, *xr = x + r * C;
      if (dz_out) {
        float* __restrict dzr = dz_out + r * C;
        for (int64_t c = 0; c < C; ++c) {
          const float xv = load(xr, c), dz = dz_at<T>(load(gr, c), xv, a[c], bb[c], act);
          dzr[c] = dz;
          s1[c] += dz;
          s2[c] += dz * (xv * r_[c] + m[c]);
        }
      } else {
        for (int64_t c = 0; c < C; ++c) {
          const float xv = load(xr, c), dz = dz_at<T>(load(gr, c), xv, a[c], bb[c], act);
          s1[c] += dz;
          s2[c] += dz * (xv * r_[c] + m[c]);
        }
      }
    }
  });
}

// Pass 2: dx = P dz + Q y + K, with dz from pass 1's buffer when it kept one.
template <typename T>
void grad_input(const T* g, const T* x, T* dx, const float* za, const float* zb, const float* ry, const float* my,
                const float* p, const float* q, const float* k, const Shape& s, bool act, const float* dz_in) {
  const int64_t C = s.C;
  for_each_part(s, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t o = (r / s.N) * C;
      const T *gr = g + r * C, *xr = x + r * C;
      T* d = dx + r * C;
      if (dz_in) {
        const float* __restrict dzr = dz_in + r * C;
        for (int64_t c = 0; c < C; ++c) {
          const float xv = load(xr, c);
          store(d, c, p[o + c] * dzr[c] + q[o + c] * (xv * ry[o + c] + my[o + c]) + k[o + c]);
        }
      } else {
        for (int64_t c = 0; c < C; ++c) {
          const float xv = load(xr, c), dz = dz_at<T>(load(gr, c), xv, za[o + c], zb[o + c], act);
          store(d, c, p[o + c] * dz + q[o + c] * (xv * ry[o + c] + my[o + c]) + k[o + c]);
        }
      }
    }
  });
}

template <typename F>
void dispatch(const Tensor& x, F fn) {
  if (x.scalar_type() == at::kFloat) {
    fn(float{});
  } else if (x.scalar_type() == at::kBFloat16) {
    fn(uint16_t{});
  } else {
    TORCH_CHECK(false, "group_norm_act: the native kernel takes float32 or bfloat16, got ", x.scalar_type());
  }
}

void check_input(const Tensor& x) {
  TORCH_CHECK(x.device().is_cpu(), "group_norm_act: the native kernel runs on CPU tensors");
}

// Per (b, c): the z = x * za + zb factors, and y = x * ry + my.
void folded_factors(const Shape& s, const std::vector<float>& a, const std::vector<float>& bv, const float* mean,
                    const float* rstd, std::vector<float>& za, std::vector<float>& zb, std::vector<float>& ry,
                    std::vector<float>& my) {
  const int64_t n = s.B * s.C, cg = s.C / s.G;
  za.resize(n), zb.resize(n), ry.resize(n), my.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t bg = (i / s.C) * s.G + (i % s.C) / cg;
    ry[i] = rstd[bg];
    my[i] = -mean[bg] * rstd[bg];
    za[i] = a[i] * rstd[bg];
    zb[i] = bv[i] + a[i] * my[i];
  }
}

std::tuple<Tensor, Tensor, Tensor> forward(const Tensor& x_in, const std::optional<Tensor>& weight,
                                           const std::optional<Tensor>& bias, const std::optional<Tensor>& scale,
                                           const std::optional<Tensor>& shift, int64_t groups, double eps, bool act) {
  check_input(x_in);
  const Shape s = shape_of(x_in, groups);
  const Tensor x = rows_view(x_in);
  auto [out, out_rows] = empty_channels_last(x_in);
  Tensor mean = at::empty({s.B, s.G}, x_in.options().dtype(at::kFloat));
  Tensor rstd = at::empty({s.B, s.G}, x_in.options().dtype(at::kFloat));
  std::vector<float> a, bv, za, zb, ry, my;
  affine_factors(weight, bias, scale, shift, s, a, bv);
  dispatch(x, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = reinterpret_cast<const T*>(x.data_ptr());
    const std::vector<double> m = moments(xp, s);
    const int64_t cg = s.C / s.G;
    const double count = double(s.N) * cg;
    float *mp = mean.data_ptr<float>(), *rp = rstd.data_ptr<float>();
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t g = 0; g < s.G; ++g) {
        double sum = 0, sq = 0;
        for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
          sum += m[b * s.C + c];
          sq += m[s.B * s.C + b * s.C + c];
        }
        const double mu = sum / count, var = std::max(sq / count - mu * mu, 0.0);
        mp[b * s.G + g] = float(mu);
        rp[b * s.G + g] = float(1.0 / std::sqrt(var + eps));
      }
    folded_factors(s, a, bv, mp, rp, za, zb, ry, my);
    apply(xp, reinterpret_cast<T*>(out_rows.data_ptr()), za.data(), zb.data(), s, act);
  });
  return {out, mean, rstd};
}

// The parameters' gradients from S1 = sum_n dz and S2 = sum_n dz y (per b, c):
//   d_gamma = sum_b S2 (1 + scale), d_beta = sum_b S1 (1 + scale),
//   d_scale = S2 gamma + S1 beta, d_shift = S1,
// each in its parameter's dtype, or an empty tensor for a parameter that is absent.
std::vector<Tensor> param_grads(const std::vector<double>& sums, const std::optional<Tensor>& weight,
                                const std::optional<Tensor>& bias, const std::optional<Tensor>& scale,
                                const std::optional<Tensor>& shift, const Shape& s, const Tensor& like) {
  auto present = [](const std::optional<Tensor>& t) { return t.has_value() && t->defined(); };
  const auto gamma = per_sample_channel(weight, s, 1.0f, false), beta = per_sample_channel(bias, s, 0.0f, false);
  const auto sc = per_sample_channel(scale, s, 0.0f, true);
  const int64_t n = s.B * s.C;
  const double *s1 = sums.data(), *s2 = sums.data() + n;
  std::vector<Tensor> out;
  auto make = [&](const std::optional<Tensor>& p, std::vector<int64_t> shape, auto value) {
    if (!present(p)) return at::empty({0}, like.options().dtype(at::kFloat));
    Tensor t = at::empty(shape, like.options().dtype(at::kFloat));
    float* d = t.data_ptr<float>();
    for (int64_t i = 0; i < t.numel(); ++i) d[i] = float(value(i));
    return t.to(p->scalar_type()).view(p->sizes());
  };
  out.push_back(make(weight, {s.C}, [&](int64_t c) {
    double v = 0;
    for (int64_t b = 0; b < s.B; ++b) v += s2[b * s.C + c] * (1.0 + sc[b * s.C + c]);
    return v;
  }));
  out.push_back(make(bias, {s.C}, [&](int64_t c) {
    double v = 0;
    for (int64_t b = 0; b < s.B; ++b) v += s1[b * s.C + c] * (1.0 + sc[b * s.C + c]);
    return v;
  }));
  out.push_back(make(scale, {s.B, s.C}, [&](int64_t i) { return s2[i] * gamma[i % s.C] + s1[i] * beta[i % s.C]; }));
  out.push_back(make(shift, {s.B, s.C}, [&](int64_t i) { return s1[i]; }));
  return out;
}

// Returns (dx, or an empty tensor when need_dx is false, d_weight, d_bias, d_scale, d_shift).
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> backward(const Tensor& grad_in, const Tensor& x_in,
                                            const std::optional<Tensor>& weight, const std::optional<Tensor>& bias,
                                            const std::optional<Tensor>& scale, const std::optional<Tensor>& shift,
                                            const Tensor& mean, const Tensor& rstd, int64_t groups, bool act,
                                            bool need_dx) {
  check_input(x_in);
  const Shape s = shape_of(x_in, groups);
  TORCH_CHECK(grad_in.sizes() == x_in.sizes(), "group_norm_act: grad and x differ in shape");
  const Tensor x = rows_view(x_in), g = rows_view(grad_in.to(x_in.scalar_type()));
  const Tensor mean_f = mean.to(at::kFloat).contiguous(), rstd_f = rstd.to(at::kFloat).contiguous();
  std::vector<float> a, bv, za, zb, ry, my;
  affine_factors(weight, bias, scale, shift, s, a, bv);
  folded_factors(s, a, bv, mean_f.data_ptr<float>(), rstd_f.data_ptr<float>(), za, zb, ry, my);
  Tensor dx = at::empty({0}, x_in.options());  // returned when dx is not needed
  std::vector<Tensor> dparams;
  dispatch(x, [&](auto tag) {
    using T = decltype(tag);
    const T *xp = reinterpret_cast<const T*>(x.data_ptr()), *gp = reinterpret_cast<const T*>(g.data_ptr());
    // Keeping dz costs a write and a read of an fp32 map; recomputing it costs the exp. The
    // first is cheaper while the map stays in cache.
    // The buffer is kept per calling thread: a fresh one each call would be page-faulted in
    // each time under glibc's malloc, which returns large blocks to the OS.
    static thread_local std::vector<float> dz_keep;
    float* dz = nullptr;
    if (act && need_dx && s.B * s.N * s.C <= kKeepDzElems) {
      if (dz_keep.size() < size_t(s.B * s.N * s.C)) dz_keep.resize(s.B * s.N * s.C);
      dz = dz_keep.data();
    }
    const std::vector<double> sums = grad_sums(gp, xp, za.data(), zb.data(), ry.data(), my.data(), s, act, dz);
    dparams = param_grads(sums, weight, bias, scale, shift, s, x_in);
    const int64_t n = s.B * s.C, cg = s.C / s.G;
    if (!need_dx) return;
    // dx = P dz + Q y + K with P = rstd A, Q = -rstd mean_g(A S2), K = -rstd mean_g(A S1).
    std::vector<float> p(n), q(n), k(n);
    const double count = double(s.N) * cg;
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t gi = 0; gi < s.G; ++gi) {
        double m1 = 0, m2 = 0;
        for (int64_t c = gi * cg; c < (gi + 1) * cg; ++c) {
          m1 += double(a[b * s.C + c]) * sums[b * s.C + c];
          m2 += double(a[b * s.C + c]) * sums[n + b * s.C + c];
        }
        const double r = ry[b * s.C + gi * cg];
        for (int64_t c = gi * cg; c < (gi + 1) * cg; ++c) {
          const int64_t i = b * s.C + c;
          p[i] = float(r * a[i]);
          q[i] = float(-r * m2 / count);
          k[i] = float(-r * m1 / count);
        }
      }
    auto [dx_t, dx_rows] = empty_channels_last(x_in);
    grad_input(gp, xp, reinterpret_cast<T*>(dx_rows.data_ptr()), za.data(), zb.data(), ry.data(), my.data(),
               p.data(), q.data(), k.data(), s, act, dz);
    dx = dx_t;
  });
  return {dx, dparams[0], dparams[1], dparams[2], dparams[3]};
}

}  // namespace

TORCH_LIBRARY(ddpm_native, m) {
  m.def(
      "group_norm_act_forward(Tensor x, Tensor? weight, Tensor? bias, Tensor? scale, Tensor? shift, int groups, "
      "float eps, bool act) -> (Tensor, Tensor, Tensor)",
      &forward);
  m.def(
      "group_norm_act_backward(Tensor grad, Tensor x, Tensor? weight, Tensor? bias, Tensor? scale, Tensor? shift, "
      "Tensor mean, Tensor rstd, int groups, bool act, bool need_dx) -> (Tensor, Tensor, Tensor, Tensor, Tensor)",
      &backward);
}
