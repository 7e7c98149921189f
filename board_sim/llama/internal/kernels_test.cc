#include "board_sim/llama/internal/kernels.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <span>
#include <string>
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
  for (Isa isa : {Isa::kPortable, Isa::kAvx2Fma, Isa::kAvx512, Isa::kAvx512Amx}) {
    if (IsaSupported(isa)) isas.push_back(isa);
  }
  return isas;
}

const char* Name(DType d) { return d == DType::kF32 ? "f32" : d == DType::kBF16 ? "bf16" : "f16"; }

// Max over y of |y - exact| / sum_i |w x| (the float32 chain's error scales with the latter).
double MaxRelativeError(const TestMatrix& m, const std::vector<float>& x, size_t rows,
                        const std::vector<float>& y) {
  double max_err = 0;
  for (size_t t = 0; t < rows; ++t) {
    for (size_t o = 0; o < m.out; ++o) {
      double want = 0, scale = 0;
      for (size_t i = 0; i < m.in; ++i) {
        want += m.values[o * m.in + i] * x[t * m.in + i];
        scale += std::fabs(m.values[o * m.in + i] * x[t * m.in + i]);
      }
      max_err = std::max(max_err, std::fabs(y[t * m.out + o] - want) / (scale + 1e-30));
    }
  }
  return max_err;
}

TEST(MatMulTest, MatchesDoubleReferenceForEveryDTypeIsaBatchAndShape) {
  WorkerPool pool(1);
  struct Shape { size_t out, in; };
  // Ragged shapes: `in` odd (the last input has no partner in its step) and `out` not a multiple
  // of the 16-row panel or of the 2- and 4-panel groups, and a shape large enough to take the
  // threaded path (4 panels per part, 2^18 multiply-adds).
  const Shape shapes[] = {{1, 1}, {3, 7}, {5, 8}, {17, 2}, {9, 37}, {131, 70}, {300, 1027}};
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (const Shape& s : shapes) {
      const TestMatrix m = MakeMatrix(dtype, s.out, s.in, 7);
      const PackedMatrix packed(m.view());
      // Every batch size that the AVX-512 (16-row tiles; 4 and 2-panel groups up to 4 and 8
      // rows), AMX (16-row tiles) and AVX2 (4-row tiles) kernels split differently, and two past
      // a full tile.
      for (size_t rows = 1; rows <= 18; ++rows) {
        if (s.in > 100 && rows % 4 != 1 && rows != 16) continue;  // Keep the big shape quick.
        const std::vector<float> x = RandomRows(rows, s.in, 11);
        for (Isa isa : Isas()) {
          for (WorkerPool* p : {static_cast<WorkerPool*>(nullptr), &pool}) {
            // Rows past the batch are sentinels: nothing may write there.
            std::vector<float> y((rows + 1) * s.out, NAN);
            MatMul(x.data(), rows, packed, y.data(), p, isa);
            for (size_t o = 0; o < s.out; ++o) ASSERT_TRUE(std::isnan(y[rows * s.out + o]));
            y.resize(rows * s.out);
            EXPECT_LE(MaxRelativeError(m, x, rows, y), 1e-5)
                << Name(dtype) << " " << s.out << "x" << s.in << " rows " << rows << " isa "
                << static_cast<int>(isa) << (p ? " pooled" : "");
          }
        }
      }
    }
  }
}

TEST(MatMulTest, EveryIsaValueRunsAndMatchesPortableEvenWhereUnsupported) {
  // Asked for directly, without BestIsa() or IsaSupported(): an Isa this CPU lacks must fall back
  // (kAvx512Amx to kAvx512, and on down) rather than die on an illegal instruction. Compared with
  // the portable result in the error measure of MaxRelativeError (scaled by sum_i |w x|).
  WorkerPool pool(1);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    const TestMatrix m = MakeMatrix(dtype, 300, 1027, 17);
    const PackedMatrix packed(m.view());
    for (size_t rows : {1u, 16u}) {
      const std::vector<float> x = RandomRows(rows, m.in, 12);
      std::vector<float> portable(rows * m.out);
      MatMul(x.data(), rows, packed, portable.data(), &pool, Isa::kPortable);
      for (Isa isa : {Isa::kPortable, Isa::kAvx2Fma, Isa::kAvx512, Isa::kAvx512Amx}) {
        std::vector<float> y(rows * m.out);
        MatMul(x.data(), rows, packed, y.data(), &pool, isa);
        double max_err = 0;
        for (size_t t = 0; t < rows; ++t) {
          for (size_t o = 0; o < m.out; ++o) {
            double scale = 0;
            for (size_t i = 0; i < m.in; ++i) {
              scale += std::fabs(m.values[o * m.in + i] * x[t * m.in + i]);
            }
            const size_t k = t * m.out + o;
            max_err = std::max(max_err, std::fabs(y[k] - portable[k]) / (scale + 1e-30));
          }
        }
        EXPECT_LE(max_err, 1e-5) << Name(dtype) << " rows " << rows << " isa "
                                 << static_cast<int>(isa)
                                 << (IsaSupported(isa) ? "" : " (unsupported, fell back)");
      }
    }
  }
}

TEST(SiluMulTest, EveryIsaValueRunsEvenWhereUnsupported) {
  // As for MatMul: each variant is within 2.5 ulp of exact, so within 5 ulp of the portable one.
  std::vector<float> g, u;
  for (float v = -20.0f; v <= 20.0f; v += 0.37f) {
    g.push_back(v);
    u.push_back(0.5f - v / 64.0f);
  }
  std::vector<float> portable = g;
  SiluMul(portable.data(), u.data(), g.size(), Isa::kPortable);
  for (Isa isa : {Isa::kPortable, Isa::kAvx2Fma, Isa::kAvx512, Isa::kAvx512Amx}) {
    std::vector<float> out = g;
    SiluMul(out.data(), u.data(), g.size(), isa);
    for (size_t i = 0; i < g.size(); ++i) {
      EXPECT_LE(std::fabs(out[i] - portable[i]), 5 * std::ldexp(1.0f, -23) * std::fabs(portable[i]))
          << "isa " << static_cast<int>(isa) << " g " << g[i];
    }
  }
}

TEST(MatMulTest, DecodeShapesStayAccurate) {
  // The model-bench shapes: a 4096-long chain per output (the MLP down projection).
  WorkerPool pool(1);
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    const TestMatrix m = MakeMatrix(dtype, 64, 4096, 9);
    const PackedMatrix packed(m.view());
    const size_t rows = 16;
    const std::vector<float> x = RandomRows(rows, m.in, 4);
    for (Isa isa : Isas()) {
      std::vector<float> y(rows * m.out);
      MatMul(x.data(), rows, packed, y.data(), &pool, isa);
      EXPECT_LE(MaxRelativeError(m, x, rows, y), 1e-5) << Name(dtype) << " isa "
                                                       << static_cast<int>(isa);
    }
  }
}

TEST(MatMulTest, EachRowIsIndependentOfTheBatchAndTheSplit) {
  WorkerPool pool(1);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    const TestMatrix m = MakeMatrix(dtype, 517, 603, 3);
    const PackedMatrix packed(m.view());
    const std::vector<float> x = RandomRows(17, m.in, 5);
    for (Isa isa : Isas()) {
      for (size_t rows : {2u, 3u, 5u, 8u, 13u, 16u, 17u}) {
        std::vector<float> batched(rows * m.out);
        MatMul(x.data(), rows, packed, batched.data(), &pool, isa);
        for (size_t t = 0; t < rows; ++t) {
          std::vector<float> one(m.out);
          MatMul(x.data() + t * m.in, 1, packed, one.data(), nullptr, isa);
          EXPECT_EQ(0, std::memcmp(one.data(), &batched[t * m.out], m.out * sizeof(float)))
              << Name(dtype) << " rows " << rows << " row " << t << " isa "
              << static_cast<int>(isa);
        }
      }
    }
  }
}

TEST(MatMulTest, SharedInputProductsEqualSeparateProducts) {
  // Q, K and V shapes (different `out`, one `in`), split over the pool together.
  WorkerPool pool(1);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    const TestMatrix q = MakeMatrix(dtype, 256, 301, 1), k = MakeMatrix(dtype, 64, 301, 2),
                     v = MakeMatrix(dtype, 70, 301, 3);
    const PackedMatrix pq(q.view()), pk(k.view()), pv(v.view());
    for (size_t rows : {1u, 16u}) {
      const std::vector<float> x = RandomRows(rows, 301, 6);
      for (Isa isa : Isas()) {
        std::vector<float> yq(rows * 256), yk(rows * 64), yv(rows * 70);
        const Product products[] = {{&pq, yq.data()}, {&pk, yk.data()}, {&pv, yv.data()}};
        MatMul(x.data(), rows, products, &pool, isa);
        for (const Product& p : products) {
          std::vector<float> alone(rows * p.w->out());
          MatMul(x.data(), rows, *p.w, alone.data(), nullptr, isa);
          EXPECT_EQ(0, std::memcmp(alone.data(), p.y, alone.size() * sizeof(float)))
              << Name(dtype) << " out " << p.w->out() << " rows " << rows << " isa "
              << static_cast<int>(isa);
        }
      }
    }
  }
}

TEST(MatMulTest, Avx2AndAvx512AgreeExactly) {
  // Both run the same fused multiply-add chain per output, in the same order.
  if (!IsaSupported(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512";
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    const TestMatrix m = MakeMatrix(dtype, 70, 301, 13);
    const PackedMatrix packed(m.view());
    const size_t rows = 7;
    const std::vector<float> x = RandomRows(rows, m.in, 2);
    std::vector<float> a(rows * m.out), b(rows * m.out);
    MatMul(x.data(), rows, packed, a.data(), nullptr, Isa::kAvx2Fma);
    MatMul(x.data(), rows, packed, b.data(), nullptr, Isa::kAvx512);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << Name(dtype);
  }
}

TEST(MatMulTest, AmxSplitsTheBatchExactly) {
  // Inputs with all 24 significant bits over a wide range of magnitudes: three bfloat16 terms
  // hold each exactly, so the AMX result is as accurate as a float32 multiply-add chain, far
  // better than the 2^-9 relative error of rounding x to bfloat16.
  if (!IsaSupported(Isa::kAvx512Amx)) GTEST_SKIP() << "no AMX";
  const TestMatrix m = MakeMatrix(DType::kBF16, 40, 1000, 21);
  const PackedMatrix packed(m.view());
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  std::uniform_int_distribution<int> exponent(-40, 40);
  const size_t rows = 16;
  std::vector<float> x(rows * m.in);
  for (float& v : x) v = std::ldexp(mantissa(rng), exponent(rng)) * (rng() % 2 ? 1.0f : -1.0f);
  std::vector<float> y(rows * m.out), ref(rows * m.out);
  MatMul(x.data(), rows, packed, y.data(), nullptr, Isa::kAvx512Amx);
  MatMul(x.data(), rows, packed, ref.data(), nullptr, Isa::kAvx512);
  const double amx = MaxRelativeError(m, x, rows, y), fma = MaxRelativeError(m, x, rows, ref);
  EXPECT_LE(amx, 1e-6);
  EXPECT_LE(fma, 1e-6);
}

TEST(SiluMulTest, MatchesDoublePrecisionForEveryIsa) {
  // Down to -87, where exp(-g) still fits in float32, silu(g) * up is a normal float; below,
  // 1 + exp(-g) overflows and every variant returns a zero (the true value is under 1e-36).
  std::vector<float> g;
  for (float v = -87.0f; v <= 100.0f; v += 0.0123f) g.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-3f, -1e-3f, 88.0f, 200.0f}) g.push_back(v);
  const size_t checked = g.size();
  for (float v : {-89.0f, -200.0f, -1e30f}) g.push_back(v);
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> u(g.size());
  for (float& v : u) v = normal(rng);
  for (Isa isa : Isas()) {
    std::vector<float> out = g;
    SiluMul(out.data(), u.data(), out.size(), isa);
    double max_ulp = 0;
    for (size_t i = 0; i < checked; ++i) {
      const double want = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
      const double ulp = want == 0 ? 0 : std::ldexp(1.0, std::ilogb(want) - 23);
      const double err = std::fabs(out[i] - want);
      max_ulp = std::max(max_ulp, err == 0 ? 0 : err / ulp);
    }
    for (size_t i = checked; i < g.size(); ++i) EXPECT_LE(std::fabs(out[i]), 1e-36f) << g[i];
    EXPECT_LE(max_ulp, 3.0) << "isa " << static_cast<int>(isa);  // Measured: 2.3 to 2.4.
  }
}

TEST(AxpyTest, MatchesTheScalarLoop) {
  for (size_t n : {0u, 1u, 7u, 8u, 9u, 64u, 67u}) {
    const std::vector<float> x = RandomRows(1, n, 1);
    std::vector<float> y = RandomRows(1, n, 2), want = y;
    Axpy(0.37f, x.data(), n, y.data());
    for (size_t i = 0; i < n; ++i) {
      want[i] += 0.37f * x[i];
      EXPECT_EQ(y[i], want[i]) << n << " " << i;
    }
  }
}

TEST(PackedMatrixTest, KeepsEveryElementExactly) {
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (size_t in : {1u, 2u, 19u}) {
      const TestMatrix m = MakeMatrix(dtype, 37, in, 6);
      const PackedMatrix packed(m.view());
      EXPECT_EQ(packed.out(), 37u);
      EXPECT_EQ(packed.in(), in);
      EXPECT_EQ(packed.panels(), 3u);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(packed.panel(0)) % 64, 0u);
      std::vector<float> row(in);
      for (size_t o = 0; o < m.out; ++o) {
        packed.ConvertRow(o, row.data());
        for (size_t i = 0; i < in; ++i) {
          ASSERT_EQ(row[i], m.values[o * in + i]) << Name(dtype) << " " << o << "," << i;
        }
      }
    }
  }
}

// Stored in chunks of every size from 1 byte (elements split over calls) up, in reverse order,
// the panels are byte for byte those of the matrix packed in one go, padding included.
TEST(PackedMatrixTest, StoreInChunksInAnyOrderGivesTheSamePanels) {
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (size_t in : {1u, 19u, 40u}) {
      const TestMatrix m = MakeMatrix(dtype, 37, in, 9);
      const PackedMatrix whole(m.view());
      for (size_t chunk : {1u, 3u, 7u, 64u, 1000u}) {
        SCOPED_TRACE(std::string(Name(dtype)) + " in=" + std::to_string(in) +
                     " chunk=" + std::to_string(chunk));
        PackedMatrix stored(dtype, m.out, m.in);
        ASSERT_EQ(stored.bytes(), whole.bytes());
        const size_t chunks = (m.bytes.size() + chunk - 1) / chunk;
        for (size_t c = chunks; c-- > 0;) {
          const size_t begin = c * chunk;
          const size_t n = std::min(chunk, m.bytes.size() - begin);
          stored.Store(begin, std::span(m.bytes).subspan(begin, n));
        }
        ASSERT_EQ(std::memcmp(stored.panel(0), whole.panel(0), whole.bytes()), 0);
      }
    }
  }
}

// Chunks that cover whole panels go through the blocked transpose (AVX-512 where the CPU has
// it); the others element by element or row by row. Every split gives every element exactly, and
// the same panels, padding included, as storing one byte at a time.
TEST(PackedMatrixTest, WholePanelsRowsAndPiecesGiveTheSamePanels) {
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (size_t in : {16u, 33u, 67u, 96u}) {
      const TestMatrix m = MakeMatrix(dtype, 70, in, 11);
      PackedMatrix bytewise(dtype, m.out, m.in);
      for (size_t b = 0; b < m.bytes.size(); ++b) {
        bytewise.Store(b, std::span(m.bytes).subspan(b, 1));
      }
      const size_t row = in * (dtype == DType::kF32 ? 4 : 2);
      for (size_t chunk : {m.bytes.size(), 16 * row, 16 * row + 3, 5 * row, 17 * row - 1, row}) {
        SCOPED_TRACE(std::string(Name(dtype)) + " in=" + std::to_string(in) +
                     " chunk=" + std::to_string(chunk));
        PackedMatrix stored(dtype, m.out, m.in);
        for (size_t begin = 0; begin < m.bytes.size(); begin += chunk) {
          const size_t n = std::min(chunk, m.bytes.size() - begin);
          stored.Store(begin, std::span(m.bytes).subspan(begin, n));
        }
        ASSERT_EQ(std::memcmp(stored.panel(0), bytewise.panel(0), bytewise.bytes()), 0);
        std::vector<float> values(in);
        for (size_t o = 0; o < m.out; ++o) {
          stored.ConvertRow(o, values.data());
          for (size_t i = 0; i < in; ++i) {
            ASSERT_EQ(values[i], m.values[o * in + i]) << o << "," << i;
          }
        }
      }
    }
  }
}

// A matrix of 1 MiB and more takes fresh pages: its padding still reads as 0.
TEST(PackedMatrixTest, ALargeMatrixIsZeroPaddedAndExact) {
  const TestMatrix m = MakeMatrix(DType::kF32, 1030, 515, 12);  // Over 2 MiB, both dims padded.
  const PackedMatrix packed(m.view());
  ASSERT_GE(packed.bytes(), size_t{2} << 20);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(packed.panel(0)) % 64, 0u);
  std::vector<float> values(m.in);
  for (size_t o = 0; o < m.out; ++o) {
    packed.ConvertRow(o, values.data());
    for (size_t i = 0; i < m.in; ++i) {
      ASSERT_EQ(values[i], m.values[o * m.in + i]) << o << "," << i;
    }
  }
  // The last panel's rows past `out` and every input past `in` are 0.
  const std::byte* last = packed.panel(packed.panels() - 1);
  const float* f = reinterpret_cast<const float*>(last);
  const size_t lanes_used = m.out % PackedMatrix::kPanelRows;
  for (size_t step = 0; step < packed.panel_bytes() / 64; ++step) {
    for (size_t lane = 0; lane < 16; ++lane) {
      if (lane >= lanes_used || step >= m.in) {
        ASSERT_EQ(f[step * 16 + lane], 0.0f) << step << "," << lane;
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
