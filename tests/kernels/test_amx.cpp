// AMX: the C++ emulation of the tile instructions against a naive matrix product
// (wrap-around, configuration limits, rows/colsb), the tile GEMM on that emulation
// against the scalar kernels bit for bit (every format, tails in M and N, 1 and 2
// threads), the same on the real tiles where the CPU has AMX, and the dispatch's
// refusal of "amx" on CPUs without it. Each test says which of emulation and
// hardware ran.
#include <cpuid.h>

#include <cstdlib>

#include <exception>
#include <string>
#include <tuple>
#include <thread>

#include "amx_tile.hpp"
#include "cpu_features.hpp"
#include "kernel_table.hpp"
#include "amx_test_util.hpp"
#include "kernel_test_util.hpp"

using namespace halfbyte;
using namespace halfbyte::test;
namespace amx = halfbyte::kernels::amx;
namespace emu = halfbyte::kernels::amx::emu;

namespace {

// ---- the emulated tile layer ------------------------------------------------------

amx::TileConfig config(std::initializer_list<std::tuple<int, int, int>> tiles) {  // (tile, rows, colsb)
  amx::TileConfig c{};
  c.palette_id = 1;
  for (auto [t, rows, colsb] : tiles) {
    c.rows[t] = uint8_t(rows);
    c.colsb[t] = uint16_t(colsb);
  }
  return c;
}

// C[m][n] (+)= sum_k A[m][4k + i] * B[k][4n + i], in int64 then wrapped to int32.
std::vector<int32_t> naive(const std::vector<uint8_t>& A, int64_t lda, const std::vector<uint8_t>& B, int64_t ldb,
                           std::vector<int32_t> C, int64_t ldc, int M, int Kq, int N, bool sa, bool sb) {
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      int64_t acc = C[size_t(m * ldc + n)];
      for (int k = 0; k < Kq; ++k)
        for (int i = 0; i < 4; ++i) {
          const uint8_t a = A[size_t(m * lda + 4 * k + i)], b = B[size_t(k * ldb + 4 * n + i)];
          acc += int64_t(sa ? int8_t(a) : a) * int64_t(sb ? int8_t(b) : b);
        }
      C[size_t(m * ldc + n)] = int32_t(uint32_t(uint64_t(acc)));  // modulo 2^32
    }
  return C;
}

using DotFn = void (*)(int, int, int);
struct DotKind {
  const char* name;
  DotFn fn;
  bool sa, sb;
};
const DotKind kDots[] = {{"tdpbssd", emu::tdpbssd, true, true},
                         {"tdpbsud", emu::tdpbsud, true, false},
                         {"tdpbusd", emu::tdpbusd, false, true},
                         {"tdpbuud", emu::tdpbuud, false, false}};

// ---- the tile GEMM against the scalar kernels ---------------------------------------

const char* kFormats[] = {"q4_0", "q4_1", "q8_0", "int4_g64", "int4a_g128", "int4_g32_bf16", "int4a_g64_bf16"};

struct Shape {
  int64_t M, N, K;
};

// Shapes with tails: M in {2, 3, 17, 64, 511} (and row splits below 16 rows per
// thread), N not a multiple of 16 or 32 (odd row-group counts), K = one block up to
// thousands.
std::vector<Shape> shapes_for(const quant::Format& f) {
  const int64_t g = f.block_size();
  return {{2, 17, g},        {3, 33, 2 * g},   {17, 47, 4 * g},  {64, 100, 512},       {511, 31, 256},
          {17, 257, 4096},   {64, 16, 8 * g},  {17, 1, 2 * g},   {33, 15, g},          {511, 100, 512},
          {2, 257, 4096 + g}};
}

// Runs fn over M x N like ops::matmul does with nthr threads (row groups split
// among them, or the rows when there are fewer groups than threads), each task
// on its own thread when nthr > 1 so that every thread configures its own tiles.
// W: kernels::Packed or kernels::Dense (16 rows per group either way).
template <class Fn, class W, class Act>
void run(Fn fn, const W& p, const Act& a, float* y, int64_t ldy, int64_t M, int nthr) {
  const int64_t G = (p.rows + 15) / 16;
  auto task = [&](int tid) {
    kernels::GemmTask t{0, G, 0, M, y, ldy};
    if (G >= nthr) {
      t.g0 = G * tid / nthr;
      t.g1 = G * (tid + 1) / nthr;
    } else {
      t.m0 = M * tid / nthr;
      t.m1 = M * (tid + 1) / nthr;
    }
    if (t.g0 < t.g1 && t.m0 < t.m1) fn(p, a, t);
  };
  if (nthr == 1) return task(0);
  std::vector<std::exception_ptr> errors(static_cast<size_t>(nthr));
  std::vector<std::thread> threads;
  for (int i = 0; i < nthr; ++i)
    threads.emplace_back([&, i] {
      try {
        task(i);
      } catch (...) {
        errors[size_t(i)] = std::current_exception();
      }
    });
  for (auto& th : threads) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// The sweep of the tile GEMM tests: every format x shape, random and adversarial
// weights (adversarial only on the smaller shapes), with activations; body(c) per case.
struct Case {
  const char* name;
  Shape s;
  bool adversarial;
  const quant::QMatrix& q;
  const kernels::Packed& p;  // into a PackedMatrix that lives while body runs
  const std::vector<float>& x;
};

template <class Body>
void for_each_case(uint64_t seed, Body&& body) {
  for (const char* name : kFormats) {
    const quant::Format f = quant::Format::parse(name);
    for (const Shape& s : shapes_for(f)) {
      for (bool adversarial : {false, true}) {
        if (adversarial && s.M * s.N * s.K > (1 << 22)) continue;
        const quant::QMatrix q = random_weights(f, s.N, s.K, seed++, adversarial);
        const ops::PackedMatrix packed = ops::PackedMatrix::pack(q);
        const kernels::Packed p = kernels::Packed::of(packed);
        const auto x = random_activations(s.M, s.K, seed++);
        body(Case{name, s, adversarial, q, p, x});
      }
    }
  }
}

// fn(f, bf16) against the scalar integer GEMM, bit for bit, on every format and
// shape, 1 and 2 threads. Outputs are written with a row stride wider than N: the
// columns past N must stay untouched. Returns the number of cases run.
int check_tile_gemm(const char* label, kernels::GemmIntFn (*fn)(kernels::Family, bool)) {
  kernels::KernelTable scalar;
  kernels::scalar::fill(scalar);
  int cases = 0;
  for_each_case(9000, [&](const Case& c) {
    const Shape& s = c.s;
    const kernels::Packed& p = c.p;
    const int64_t nb = s.K / 32;
    std::vector<int8_t> qs(size_t(s.M * s.K));
    std::vector<kernels::ActBlock> meta(size_t(s.M * nb));
    for (int64_t m = 0; m < s.M; ++m)
      scalar.quantize_act(c.x.data() + m * s.K, s.K, qs.data() + m * s.K, meta.data() + m * nb);
    const kernels::ActQ8 a{qs.data(), meta.data(), s.K};
    const int64_t ldy = s.N + 3;
    std::vector<float> want(size_t(s.M * ldy), -7.0f);
    run(scalar.gemm_int[p.family][p.bf16], p, a, want.data(), ldy, s.M, 1);
    for (int nthr : {1, 2}) {
      std::vector<float> got(size_t(s.M * ldy), -7.0f);
      run(fn(p.family, p.bf16), p, a, got.data(), ldy, s.M, nthr);
      ++cases;
      for (int64_t m = 0; m < s.M; ++m)
        for (int64_t n = 0; n < ldy; ++n) {
          const size_t i = size_t(m * ldy + n);
          if (std::memcmp(&got[i], &want[i], 4) == 0) continue;
          INFO(label << ": " << c.name << (c.adversarial ? " adversarial" : "") << " M=" << s.M << " N=" << s.N
                     << " K=" << s.K << " threads=" << nthr << " at m=" << m << " n=" << n << ": got " << got[i]
                     << ", scalar " << want[i]);
          REQUIRE(std::memcmp(&got[i], &want[i], 4) == 0);
        }
    }
  });
  return cases;
}

// The bf16 tiles' bound on 1 and 2 threads: runs(nthr, got) fills got ([M][N + 3],
// pre-filled with -7); every output within (2^-7 + 2^-16 + K 2^-23) sum_k |w_k x_k| of
// the oracle (the small absolute slack covers the hardware's flushing of subnormal
// products), columns past N untouched, both thread counts equal. Adds the runs to
// cases, returns the worst error as a fraction of the bound.
template <class Runs>
double check_bf16_bound(const std::string& what, const Shape& s, const Oracle& o, Runs&& runs, int& cases) {
  const int64_t ldy = s.N + 3;
  const double rel = std::ldexp(1.0, -7) + std::ldexp(1.0, -16) + double(s.K) * std::ldexp(1.0, -23);
  double worst = 0;
  std::vector<float> first;
  for (int nthr : {1, 2}) {
    std::vector<float> got(size_t(s.M * ldy), -7.0f);
    runs(nthr, got.data(), ldy);
    ++cases;
    for (int64_t m = 0; m < s.M; ++m)
      for (int64_t n = 0; n < ldy; ++n) {
        const size_t i = size_t(m * ldy + n);
        INFO(what << " M=" << s.M << " N=" << s.N << " K=" << s.K << " threads=" << nthr << " at m=" << m
                  << " n=" << n << ": got " << got[i]);
        if (n >= s.N) {
          REQUIRE(got[i] == -7.0f);
          continue;
        }
        const size_t k = size_t(m * s.N + n);
        const double bound = rel * o.abs_sum[k] + 1e-30, err = std::fabs(double(got[i]) - o.y[k]);
        INFO("oracle " << o.y[k] << ", bound " << bound);
        REQUIRE(err <= bound);
        worst = std::max(worst, err / bound);
      }
    if (nthr == 1) first = got;
    else REQUIRE(std::memcmp(first.data(), got.data(), got.size() * sizeof(float)) == 0);
  }
  return worst;
}

// The bf16 tile GEMM (kernels/amx/tile_gemm_bf16.inl) against the oracle, within
// its stated bound |y - y*| <= (2^-7 + 2^-16 + K 2^-23) sum_k |w_k x_k| (bf16 weights
// and activations, fp32 sums in the unit's order; the small absolute slack covers
// the hardware's flushing of subnormal products), every format and shape, 1 and 2
// threads (equal to each other: a task's split does not change an output's sum),
// columns past N untouched. Returns the number of cases and the worst error as a
// fraction of the bound.
std::pair<int, double> check_tile_gemm_bf16(const char* label, kernels::GemmFloatFn (*fn)(kernels::Family, bool)) {
  int cases = 0;
  double worst = 0;
  for_each_case(19000, [&](const Case& c) {
    const kernels::Packed& p = c.p;
    const Oracle o = oracle(dequantized(c.q), c.x, c.s.M, c.s.N, c.s.K);
    const kernels::ActF32 a{c.x.data(), c.s.K, nullptr};
    const std::string what = std::string(label) + ": " + c.name + (c.adversarial ? " adversarial" : "");
    worst = std::max(worst, check_bf16_bound(what, c.s, o, [&](int nthr, float* y, int64_t ldy) {
      run(fn(p.family, p.bf16), p, a, y, ldy, c.s.M, nthr);
    }, cases));
  });
  return {cases, worst};
}

// Float weights (f32, f16, bf16) on the bf16 tiles (kernels/amx/tile_gemm_dense.inl)
// against the exact product of the weights as given, within the same bound as
// check_tile_gemm_bf16; K with tails (1, 33, 70, 100, 1000: the last block padded),
// rows a leading dimension wider than K apart, 1 and 2 threads equal, columns past N
// untouched.
std::pair<int, double> check_tile_gemm_dense(const char* label, kernels::GemmDenseFn (*fn)(kernels::DenseType)) {
  const Shape shapes[] = {{2, 17, 32},  {3, 33, 33},   {17, 47, 100},  {64, 100, 384},
                          {511, 31, 70}, {17, 1, 1},   {33, 15, 1000}, {64, 257, 1536}};
  const char* names[] = {"f32", "f16", "bf16"};
  int cases = 0;
  double worst = 0;
  uint64_t seed = 29000;
  for (int type = 0; type < kernels::kDenseTypes; ++type) {
    for (const Shape& s : shapes) {
      const int64_t ld = s.K + 5;
      std::mt19937_64 rng{seed++};
      std::normal_distribution<float> nd(0.0f, 0.05f);
      std::vector<float> w(size_t(s.N * s.K));  // the weights as given, exactly
      std::vector<float> w32(size_t(s.N * ld), 1e30f);
      std::vector<uint16_t> w16(size_t(s.N * ld), 0x7C00);  // padding: +inf (f16), never read
      for (int64_t n = 0; n < s.N; ++n)
        for (int64_t k = 0; k < s.K; ++k) {
          float v = nd(rng) * (k % 11 == 0 ? 40.0f : 1.0f);
          const size_t at = size_t(n * ld + k);
          if (type == kernels::kDenseF16) {
            w16[at] = f16::from_float(v).bits;
            v = f16{w16[at]}.to_float();
          } else if (type == kernels::kDenseBF16) {
            w16[at] = bf16::from_float(v).bits;
            v = bf16{w16[at]}.to_float();
          }
          w32[at] = v;
          w[size_t(n * s.K + k)] = v;
        }
      const void* data = type == kernels::kDenseF32 ? static_cast<const void*>(w32.data()) : w16.data();
      const kernels::Dense d{data, ld, s.N, s.K};
      const auto x = random_activations(s.M, s.K, seed++);
      const Oracle o = oracle(w, x, s.M, s.N, s.K);
      const kernels::ActF32 a{x.data(), s.K, nullptr};
      const std::string what = std::string(label) + ": " + names[type];
      worst = std::max(worst, check_bf16_bound(what, s, o, [&](int nthr, float* y, int64_t ldy) {
        run(fn(kernels::DenseType(type)), d, a, y, ldy, s.M, nthr);
      }, cases));
    }
  }
  return {cases, worst};
}

}  // namespace

TEST_CASE("amx emulation: tile products equal a naive int8 matrix product", "[amx]") {
  std::mt19937_64 rng{42};
  for (const DotKind& d : kDots) {
    for (int trial = 0; trial < 40; ++trial) {
      const int M = 1 + int(rng() % 16), Kq = 1 + int(rng() % 16), N = 1 + int(rng() % 16);
      // A: M x 4Kq bytes in tmm1, B: Kq x 4N in tmm2, C: M x 4N int32 in tmm5.
      const auto cfg = config({{1, M, 4 * Kq}, {2, Kq, 4 * N}, {5, M, 4 * N}});
      emu::ldtilecfg(&cfg);
      const int64_t lda = 4 * Kq + int64_t(rng() % 9), ldb = 4 * N + int64_t(rng() % 9), ldc = N + int64_t(rng() % 3);
      std::vector<uint8_t> A(size_t(M * lda)), B(size_t(Kq * ldb));
      for (auto& v : A) v = uint8_t(rng());
      for (auto& v : B) v = uint8_t(rng());
      std::vector<int32_t> C(size_t(M * ldc));
      for (auto& v : C) v = int32_t(uint32_t(rng()));
      emu::tileloadd(1, A.data(), lda);
      emu::tileloadd(2, B.data(), ldb);
      emu::tileloadd(5, C.data(), ldc * 4);
      d.fn(5, 1, 2);
      std::vector<int32_t> got(C.size(), 0x5A5A5A5A);
      emu::tilestored(5, got.data(), ldc * 4);
      const auto want = naive(A, lda, B, ldb, C, ldc, M, Kq, N, d.sa, d.sb);
      INFO(d.name << " M=" << M << " Kq=" << Kq << " N=" << N);
      for (int m = 0; m < M; ++m)
        for (int n = 0; n < ldc; ++n) {
          const size_t i = size_t(m * ldc + n);
          REQUIRE(got[i] == (n < N ? want[i] : 0x5A5A5A5A));  // stores rows x colsb, nothing else
        }
    }
  }
  emu::tilerelease();
}

TEST_CASE("amx emulation: int32 accumulation wraps around", "[amx]") {
  const auto cfg = config({{0, 2, 64}, {1, 16, 64}, {2, 2, 64}});
  emu::ldtilecfg(&cfg);
  std::vector<uint8_t> A(128, 0xFF), B(16 * 64, 0xFF);  // u8: 255 * 255 * 64 = 4161600 per output
  std::vector<int32_t> C(32, INT32_MAX - 1000);
  emu::tileloadd(0, A.data(), 64);
  emu::tileloadd(1, B.data(), 64);
  emu::tileloadd(2, C.data(), 64);
  emu::tdpbuud(2, 0, 1);
  emu::tilestored(2, C.data(), 64);
  for (int32_t v : C) REQUIRE(v == int32_t(uint32_t(INT32_MAX - 1000) + 4161600u));
  // Signed: (-128) * (-128) * 64 added to INT32_MIN + 1 stays negative; INT32_MAX wraps.
  std::vector<uint8_t> S(16 * 64, 0x80);
  std::vector<int32_t> D(32, INT32_MAX);
  emu::tileloadd(0, S.data(), 64);
  emu::tileloadd(1, S.data(), 64);
  emu::tileloadd(2, D.data(), 64);
  emu::tdpbssd(2, 0, 1);
  emu::tilestored(2, D.data(), 64);
  for (int32_t v : D) REQUIRE(v == int32_t(uint32_t(INT32_MAX) + 16384u * 64u));
  emu::tilerelease();
}

TEST_CASE("amx emulation: configuration limits and faults", "[amx]") {
  auto gp = Catch::Contains("#GP");
  auto ud = Catch::Contains("#UD");
  emu::tilerelease();
  uint8_t buf[64 * 16] = {};
  REQUIRE_THROWS_WITH(emu::tileloadd(0, buf, 64), ud && Catch::Contains("not configured"));
  REQUIRE_THROWS_WITH(emu::tilezero(0), ud);
  auto bad = config({{0, 17, 64}});
  REQUIRE_THROWS_WITH(emu::ldtilecfg(&bad), gp && Catch::Contains("rows 17 > 16"));
  bad = config({{3, 16, 65}});
  REQUIRE_THROWS_WITH(emu::ldtilecfg(&bad), gp && Catch::Contains("colsb 65 > 64"));
  bad = config({{0, 0, 64}});
  REQUIRE_THROWS_WITH(emu::ldtilecfg(&bad), gp && Catch::Contains("one of rows and colsb is 0"));
  bad = config({{0, 4, 0}});
  REQUIRE_THROWS_WITH(emu::ldtilecfg(&bad), gp);
  bad = config({{8, 16, 64}});  // palette 1 has 8 tiles
  REQUIRE_THROWS_WITH(emu::ldtilecfg(&bad), gp);
  bad = config({{0, 16, 64}});
  bad.reserved[3] = 1;
  REQUIRE_THROWS_WITH(emu::ldtilecfg(&bad), gp && Catch::Contains("reserved"));
  bad = config({{0, 16, 64}});
  bad.palette_id = 2;
  REQUIRE_THROWS_WITH(emu::ldtilecfg(&bad), gp && Catch::Contains("palette_id 2"));

  // A refused configuration leaves the state as it was (here: unconfigured).
  amx::TileConfig live;
  emu::sttilecfg(&live);
  REQUIRE(live.palette_id == 0);

  const auto cfg = config({{0, 4, 32}, {1, 8, 64}, {2, 4, 64}, {3, 4, 60}, {4, 5, 64}});
  emu::ldtilecfg(&cfg);
  emu::sttilecfg(&live);
  REQUIRE(std::memcmp(&live, &cfg, sizeof cfg) == 0);
  REQUIRE_NOTHROW(emu::tdpbssd(2, 0, 1));
  REQUIRE_THROWS_WITH(emu::tdpbssd(2, 0, 0), ud && Catch::Contains("distinct"));
  REQUIRE_THROWS_WITH(emu::tdpbssd(4, 0, 1), ud && Catch::Contains("dst.rows 5 != a.rows 4"));
  REQUIRE_THROWS_WITH(emu::tdpbssd(3, 0, 1), ud && Catch::Contains("dst.colsb 60 != b.colsb 64"));
  REQUIRE_THROWS_WITH(emu::tdpbssd(2, 1, 0), ud);  // a.colsb 64 != 4 * b.rows 4 (and rows differ)
  REQUIRE_THROWS_WITH(emu::tileloadd(6, buf, 64), ud && Catch::Contains("tile 6 is not configured"));
  REQUIRE_THROWS_WITH(emu::tdpbssd(2, 0, 6), ud);

  // LDTILECFG zeroes the tile data; loads fill rows x colsb and stores write only that.
  std::vector<uint8_t> src(64 * 16, 0xAB);
  emu::tileloadd(1, src.data(), 64);
  emu::ldtilecfg(&cfg);
  std::vector<uint8_t> out(64 * 16, 0xEE);
  emu::tilestored(1, out.data(), 64);
  for (int i = 0; i < 64 * 8; ++i) REQUIRE(out[size_t(i)] == 0);
  for (int i = 64 * 8; i < 64 * 16; ++i) REQUIRE(out[size_t(i)] == 0xEE);
  std::fill(out.begin(), out.end(), 0xEE);
  emu::tileloadd(0, src.data(), 40);  // 4 rows of 32 bytes, 40 apart
  emu::tilestored(0, out.data(), 33);
  for (int i = 0; i < 64 * 16; ++i) {
    const bool in_tile = i < 3 * 33 + 32 && i % 33 < 32;
    REQUIRE(out[size_t(i)] == (in_tile ? 0xAB : 0xEE));
  }

  // start_row (the restart point of an interrupted load): rows before it are kept.
  auto restart = cfg;
  restart.start_row = 2;
  emu::ldtilecfg(&restart);
  emu::tileloadd(0, src.data(), 32);
  emu::sttilecfg(&live);
  REQUIRE(live.start_row == 0);  // cleared by the instruction
  std::fill(out.begin(), out.end(), 0xEE);
  emu::tilestored(0, out.data(), 32);
  for (int i = 0; i < 4 * 32; ++i) REQUIRE(out[size_t(i)] == (i < 2 * 32 ? 0 : 0xAB));

  // Palette 0 and TILERELEASE return to the INIT state.
  amx::TileConfig init{};
  emu::ldtilecfg(&init);
  emu::sttilecfg(&live);
  REQUIRE(live.palette_id == 0);
  REQUIRE_THROWS_WITH(emu::tilezero(0), ud);
  emu::ldtilecfg(&cfg);
  emu::tilerelease();
  REQUIRE_THROWS_WITH(emu::tilestored(0, out.data(), 64), ud);
}

TEST_CASE("amx: the tile GEMM on emulated tiles equals the scalar kernels bit for bit", "[amx]") {
  on_emulated_tiles("amx", [](const char* label) {
    return std::to_string(check_tile_gemm(label, amx::emulated_tile_gemm_int)) + " cases equal the scalar kernels bit for bit";
  });
}

TEST_CASE("amx: the tile GEMM on AMX hardware equals the scalar kernels bit for bit", "[amx]") {
  on_amx_hardware("amx", false, [](const char* label) {
    return std::to_string(check_tile_gemm(label, amx::tile_gemm_int)) + " cases equal the scalar kernels bit for bit";
  });
}

TEST_CASE("amx: the tile GEMMs give back a configuration they found, keep theirs otherwise", "[amx]") {
  if (!isa_available("avx512")) {
    std::printf("amx (emulated): skipped: the emulated tile kernel needs AVX-512, which this CPU lacks\n");
    return;
  }
  const quant::QMatrix q = random_weights(quant::Format::q4_0(), 40, 128, 77, false);
  const ops::PackedMatrix packed = ops::PackedMatrix::pack(q);
  const kernels::Packed p = kernels::Packed::of(packed);
  const int64_t M = 33;
  const auto x = random_activations(M, 128, 78);
  std::vector<int8_t> qs(size_t(M * 128));
  std::vector<kernels::ActBlock> meta(size_t(M * 4));
  kernels::KernelTable scalar;
  kernels::scalar::fill(scalar);
  for (int64_t m = 0; m < M; ++m) scalar.quantize_act(x.data() + m * 128, 128, qs.data() + m * 128, meta.data() + m * 4);
  const kernels::ActQ8 a8{qs.data(), meta.data(), 128};
  const kernels::ActF32 af{x.data(), 128, nullptr};
  std::vector<float> y(size_t(M * 40));
  // Another library's configuration (all 8 tiles 4 x 16 bytes) is given back.
  const amx::TileConfig foreign = config({{0, 4, 16}, {1, 4, 16}, {2, 4, 16}, {3, 4, 16}, {4, 4, 16}, {5, 4, 16},
                                          {6, 4, 16}, {7, 4, 16}});
  for (int bf16_kernel = 0; bf16_kernel < 2; ++bf16_kernel) {
    emu::ldtilecfg(&foreign);
    if (bf16_kernel) run(amx::emulated_tile_gemm_bf16(p.family, p.bf16), p, af, y.data(), 40, M, 1);
    else run(amx::emulated_tile_gemm_int(p.family, p.bf16), p, a8, y.data(), 40, M, 1);
    amx::TileConfig after{};
    emu::sttilecfg(&after);
    REQUIRE(std::memcmp(&after, &foreign, sizeof after) == 0);
    // A thread with no configuration keeps the kernel's (palette 1, not released).
    emu::tilerelease();
    if (bf16_kernel) run(amx::emulated_tile_gemm_bf16(p.family, p.bf16), p, af, y.data(), 40, M, 1);
    else run(amx::emulated_tile_gemm_int(p.family, p.bf16), p, a8, y.data(), 40, M, 1);
    emu::sttilecfg(&after);
    REQUIRE(after.palette_id == 1);
    REQUIRE(std::memcmp(&after, &foreign, sizeof after) != 0);
  }
  emu::tilerelease();
}

TEST_CASE("amx: the bf16 tile GEMM on emulated tiles, within its bound of the oracle", "[amx]") {
  on_emulated_tiles("amx bf16", [](const char* label) {
    const auto [cases, worst] = check_tile_gemm_bf16(label, amx::emulated_tile_gemm_bf16);
    return within_bound(cases, worst);
  });
}

TEST_CASE("amx: the bf16 tile GEMM on AMX hardware, within its bound of the oracle", "[amx]") {
  on_amx_hardware("amx bf16", true, [](const char* label) {
    const auto [cases, worst] = check_tile_gemm_bf16(label, amx::tile_gemm_bf16);
    return within_bound(cases, worst);
  });
}

TEST_CASE("amx: float weights on emulated bf16 tiles, within the bound of the exact product", "[amx]") {
  on_emulated_tiles("amx float weights", [](const char* label) {
    const auto [cases, worst] = check_tile_gemm_dense(label, amx::emulated_tile_gemm_dense);
    return within_bound(cases, worst);
  });
}

TEST_CASE("amx: float weights on AMX hardware bf16 tiles, within the bound of the exact product", "[amx]") {
  on_amx_hardware("amx float weights", true, [](const char* label) {
    const auto [cases, worst] = check_tile_gemm_dense(label, amx::tile_gemm_dense);
    return within_bound(cases, worst);
  });
}

TEST_CASE("amx: the dispatch offers amx only with AMX, and says what is missing", "[amx][dispatch]") {
  const auto compiled = compiled_isas();
  REQUIRE(std::find(compiled.begin(), compiled.end(), "amx") != compiled.end());
  IsaGuard guard;
  if (isa_available("amx")) {
    set_isa("amx");
    REQUIRE(isa() == "amx");
    return;
  }
  unsigned a = 0, b = 0, c = 0, d = 0;
  __cpuid_count(7, 0, a, b, c, d);
  const bool tile = d & (1u << 24), int8 = d & (1u << 25);
  try {
    set_isa("amx");
    FAIL("set_isa(\"amx\") succeeded on a CPU without usable AMX");
  } catch (const Error& e) {
    std::printf("amx: set_isa refused: %s\n", e.what());
    REQUIRE(e.kind() == ErrorKind::Unsupported);
    REQUIRE_THAT(e.what(), Catch::Contains("ISA 'amx' is not available: "));
    if (!tile || !int8) REQUIRE_THAT(e.what(), Catch::Contains("this CPU has no AMX-"));
    if (!int8) REQUIRE_THAT(e.what(), Catch::Contains("no AMX-INT8"));
    if (!tile) REQUIRE_THAT(e.what(), Catch::Contains("no AMX-TILE"));
    if (tile && int8)  // the CPU has it: the OS or Linux's permission is what is missing
      REQUIRE_THAT(e.what(), Catch::Contains("Linux refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM): ") ||
                                 Catch::Contains("XCR0") || Catch::Contains("AVX-512"));
  }
  REQUIRE(isa() != "amx");
}

TEST_CASE("amx: amx_emulated is offered only when asked for, on AVX-512 CPUs", "[amx][dispatch]") {
  IsaGuard guard;
  const char* saved_env = std::getenv("HALFBYTE_AMX_EMULATION");
  const std::string saved = saved_env ? saved_env : "";
  ::unsetenv("HALFBYTE_AMX_EMULATION");
  REQUIRE_FALSE(isa_available("amx_emulated"));
  try {
    set_isa("amx_emulated");
    FAIL("set_isa(\"amx_emulated\") succeeded without HALFBYTE_AMX_EMULATION");
  } catch (const Error& e) {
    REQUIRE(e.kind() == ErrorKind::Unsupported);
    REQUIRE_THAT(e.what(), Catch::Contains("ISA 'amx_emulated' is not available: "));
  }
  ::setenv("HALFBYTE_AMX_EMULATION", "1", 1);
  if (isa_available("avx512")) {
    REQUIRE(isa_available("amx_emulated"));
    set_isa("avx512");
    const kernels::GemmIntFn vnni = kernels::active().gemm_int[kernels::kQ8][0];
    set_isa("amx_emulated");
    REQUIRE(isa() == "amx_emulated");
    // avx512's table with the integer GEMM (from kMinTileRows rows) on the tiles, as amx's.
    REQUIRE(kernels::active().gemm_int[kernels::kQ8][0] != vnni);
    std::printf("amx_emulated: offered with HALFBYTE_AMX_EMULATION=1, the tile kernels %s\n",
                kernels::active().gemm_tile[kernels::kQ8][0] ? "int8 and bf16" : "int8");
  } else {
    REQUIRE_FALSE(isa_available("amx_emulated"));
    std::printf("amx_emulated: skipped: the emulated tiles need AVX-512, which this CPU lacks\n");
  }
  if (saved_env)
    ::setenv("HALFBYTE_AMX_EMULATION", saved.c_str(), 1);
  else
    ::unsetenv("HALFBYTE_AMX_EMULATION");
  REQUIRE_FALSE((saved_env == nullptr && isa_available("amx_emulated")));
}
