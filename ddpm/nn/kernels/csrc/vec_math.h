// Scalar helpers written so that gcc vectorises the loops that call them (checked with
// -fopt-info-vec): bf16 <-> fp32 by bit patterns, and an exp without libm calls.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace ddpm_native {

// Element types: float, or bf16 stored as uint16_t.
inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const uint16_t* p, int64_t i) {
  uint32_t u = uint32_t(p[i]) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline void store(float* p, int64_t i, float v) { p[i] = v; }
inline void store(uint16_t* p, int64_t i, float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;  // round to nearest even
  p[i] = (v != v) ? uint16_t((u >> 16) | 0x40u) : uint16_t(rounded);  // NaN stays NaN
}

// exp(x): Cody-Waite reduction to r in [-ln2/2, ln2/2] and a Taylor polynomial of degree
// Degree in r. Degree 7 has a relative error below 1e-7 (fp32 results); degree 5 below 3e-6,
// which is 1000x finer than bf16's rounding and saves a fifth of the work there.
template <int Degree>
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  // round to nearest by adding and removing 1.5 * 2^23 (std::floor would keep gcc from
  // vectorising the loop unless -fno-trapping-math)
  const float magic = 12582912.0f;
  const float n = (x * 1.44269504088896341f + magic) - magic;
  float r = x - n * 0.693145751953125f;
  r = r - n * 1.42860682030941723212e-6f;
  static_assert(Degree == 5 || Degree == 7, "exp_approx: degree 5 or 7");
  float p = 1.0f / 120;  // Horner from r^Degree / Degree! down to 1
  if constexpr (Degree == 7) {
    p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
  }
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t bits = (int32_t(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return p * two_n;
}

// The polynomial degree each element type needs.
template <typename T>
constexpr int kExpDegree = 7;
template <>
constexpr int kExpDegree<uint16_t> = 5;

template <typename T>
inline float exp_for(float x) {
  return exp_approx<kExpDegree<T>>(x);
}

template <typename T>
inline float sigmoid(float z) {
  return 1.0f / (1.0f + exp_for<T>(-z));
}

}  // namespace ddpm_native
