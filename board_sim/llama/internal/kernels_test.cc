#include "board_sim/llama/internal/kernels.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace wafer::sim::internal {
namespace {

// A random [out, in] matrix stored in `dtype`, with the exact float values it encodes.
struct TestMatrix {
  DType dtype;
  size_t out, in;
  std::vector<std::byte> bytes;
  std::vector<double> values;
  WeightMatrix view() const { return {dtype, bytes.data(), out, in}; }
};

uint16_t ToBFloat16(float f) { return static_cast<uint16_t>(std::bit_cast<uint32_t>(f) >> 16); }

TestMatrix MakeMatrix(DType dtype, size_t out, size_t in, uint32_t seed) {
  TestMatrix m{dtype, out, in, {}, {}};
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> grid(-512, 512);
  const size_t size = dtype == DType::kF32 ? 4 : 2;
  m.bytes.resize(out * in * size);
  m.values.resize(out * in);
  for (size_t i = 0; i < out * in; ++i) {
    // Multiples of 1/1024 below 0.5 in magnitude are exact in all three dtypes' grids... except
    // bfloat16's 8-bit significand, so round through its encoding and keep the decoded value.
    float v = static_cast<float>(grid(rng)) / 1024.0f;
    if (dtype == DType::kF32) {
      std::memcpy(&m.bytes[4 * i], &v, 4);
    } else if (dtype == DType::kBF16) {
      const uint16_t bits = ToBFloat16(v);
      v = BFloat16ToFloat(bits);
      std::memcpy(&m.bytes[2 * i], &bits, 2);
    } else {
      // v = k / 1024 with |k| <= 512 has at most 10 significant bits: exact in binary16.
      const uint16_t bits = v == 0 ? 0
                                   : static_cast<uint16_t>(
                                         (v < 0 ? 0x8000u : 0u) |
                                         ((static_cast<uint32_t>(std::ilogb(v) + 15)) << 10) |
                                         (static_cast<uint32_t>(std::ldexp(std::fabs(v), 10 - std::ilogb(v))) & 0x3ffu));
      EXPECT_EQ(HalfToFloat(bits), v);
      std::memcpy(&m.bytes[2 * i], &bits, 2);
    }
    m.values[i] = v;
  }
  return m;
}

std::vector<float> RandomRows(size_t rows, size_t in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(rows * in);
  for (float& v : x) v = normal(rng);
  return x;
}

// Every Isa this CPU runs (the others cannot be tested here).
std::vector<Isa> Isas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kPortable, Isa::kAvx2Fma, Isa::kAvx512}) {
    if (IsaSupported(isa)) isas.push_back(isa);
  }
  return isas;
}

const char* Name(DType d) { return d == DType::kF32 ? "f32" : d == DType::kBF16 ? "bf16" : "f16"; }

TEST(MatMulTest, MatchesDoubleReferenceForEveryDTypeIsaBatchAndShape) {
  WorkerPool pool(1);
  struct Shape { size_t out, in; };
  // Ragged shapes: `in` not a multiple of 8, `out` not a multiple of the row block, and a shape
  // large enough to take the threaded path (kRowsPerPart 64, 2^18 multiply-adds).
  const Shape shapes[] = {{1, 1}, {3, 7}, {5, 8}, {9, 37}, {131, 70}, {300, 1027}};
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (const Shape& s : shapes) {
      const TestMatrix m = MakeMatrix(dtype, s.out, s.in, 7);
      for (size_t rows : {1u, 2u, 3u, 5u, 16u}) {
        const std::vector<float> x = RandomRows(rows, s.in, 11);
        for (Isa isa : Isas()) {
          for (WorkerPool* p : {static_cast<WorkerPool*>(nullptr), &pool}) {
            std::vector<float> y(rows * s.out, NAN);
            MatMul(x.data(), rows, m.view(), y.data(), p, isa);
            double max_err = 0;
            for (size_t t = 0; t < rows; ++t) {
              for (size_t o = 0; o < s.out; ++o) {
                double want = 0, scale = 0;
                for (size_t i = 0; i < s.in; ++i) {
                  want += m.values[o * s.in + i] * x[t * s.in + i];
                  scale += std::fabs(m.values[o * s.in + i] * x[t * s.in + i]);
                }
                max_err = std::max(max_err, std::fabs(y[t * s.out + o] - want) / (scale + 1e-30));
              }
            }
            EXPECT_LE(max_err, 1e-5) << Name(dtype) << " " << s.out << "x" << s.in << " rows "
                                     << rows << " isa " << static_cast<int>(isa)
                                     << (p ? " pooled" : "");
          }
        }
      }
    }
  }
}

TEST(MatMulTest, EachRowIsIndependentOfTheBatchAndTheSplit) {
  WorkerPool pool(1);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    const TestMatrix m = MakeMatrix(dtype, 517, 603, 3);
    const size_t rows = 16;
    const std::vector<float> x = RandomRows(rows, m.in, 5);
    for (Isa isa : Isas()) {
      std::vector<float> batched(rows * m.out);
      MatMul(x.data(), rows, m.view(), batched.data(), &pool, isa);
      for (size_t t = 0; t < rows; ++t) {
        std::vector<float> one(m.out);
        MatMul(x.data() + t * m.in, 1, m.view(), one.data(), nullptr, isa);
        EXPECT_EQ(0, std::memcmp(one.data(), &batched[t * m.out], m.out * sizeof(float)))
            << Name(dtype) << " row " << t << " isa " << static_cast<int>(isa);
      }
    }
  }
}

TEST(ConvertRowTest, DecodesEveryDType) {
  const TestMatrix bf = MakeMatrix(DType::kBF16, 3, 19, 1);
  const TestMatrix hf = MakeMatrix(DType::kF16, 3, 19, 2);
  const TestMatrix f = MakeMatrix(DType::kF32, 3, 19, 3);
  for (const TestMatrix* m : {&bf, &hf, &f}) {
    std::vector<float> row(m->in);
    ConvertRow(m->view(), 2, row.data());
    for (size_t i = 0; i < m->in; ++i) EXPECT_EQ(row[i], m->values[2 * m->in + i]) << Name(m->dtype);
  }
}

}  // namespace
}  // namespace wafer::sim::internal
