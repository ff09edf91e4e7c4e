// Plain C++ emulation of the AMX tile instructions (see amx_tile.hpp). Built with
// the baseline flags like the rest of the library: it is the reference the tile
// kernel's emulated instantiation runs on, not a fast path.
#include <cstring>
#include <memory>
#include <utility>

#include "amx_tile.hpp"
#include "halfbyte/core/error.hpp"

namespace halfbyte::kernels::amx::emu {
namespace {

// One thread's tile architecture state. Allocated on first use so that threads
// that never touch tiles carry no 8 KB of TLS.
struct State {
  bool configured = false;  // TILES_CONFIGURED
  TileConfig cfg{};
  uint8_t data[kTiles][kMaxRows][kMaxColsb] = {};
};
thread_local std::unique_ptr<State> t_state;

State& state() {
  if (!t_state) t_state = std::make_unique<State>();
  return *t_state;
}

template <class... Why>
[[noreturn]] void fault(const char* insn, const char* exc, Why&&... why) {
  throw_error(ErrorKind::Runtime, "amx emulation: ", insn, " raises ", exc, ": ", std::forward<Why>(why)...);
}

// The checks every instruction that names a tile makes (#UD).
State& use(const char* insn, int tile) {
  State& s = state();
  if (!s.configured) fault(insn, "#UD", "tiles are not configured (no LDTILECFG with palette 1)");
  if (tile < 0 || tile >= kTiles) fault(insn, "#UD", "no tile ", tile);
  if (s.cfg.rows[tile] == 0 || s.cfg.colsb[tile] == 0)
    fault(insn, "#UD", "tile ", tile, " is not configured (rows or colsb 0)");
  return s;
}

void zero_rows_from(State& s, int tile, int first) {
  for (int r = first; r < kMaxRows; ++r) std::memset(s.data[tile][r], 0, kMaxColsb);
}

// The operand checks of the dot products (#UD), shared by the int8 and bf16 ones.
const TileConfig& check_dot(const char* insn, int dst, int a, int b) {
  State& s = use(insn, dst);
  use(insn, a);
  use(insn, b);
  if (dst == a || dst == b || a == b) fault(insn, "#UD", "operands must be distinct tiles");
  const TileConfig& c = s.cfg;
  if (c.rows[dst] != c.rows[a]) fault(insn, "#UD", "dst.rows ", int(c.rows[dst]), " != a.rows ", int(c.rows[a]));
  if (c.colsb[a] % 4 != 0 || c.colsb[a] / 4 != c.rows[b])
    fault(insn, "#UD", "a.colsb ", int(c.colsb[a]), " != 4 * b.rows ", int(c.rows[b]));
  if (c.colsb[dst] != c.colsb[b]) fault(insn, "#UD", "dst.colsb ", int(c.colsb[dst]), " != b.colsb ", int(c.colsb[b]));
  if (c.colsb[dst] % 4 != 0) fault(insn, "#UD", "dst.colsb ", int(c.colsb[dst]), " is not a multiple of 4");
  return c;
}

// dst += a . b; SA / SB: bytes of a / b are signed.
template <bool SA, bool SB>
void dot_bytes(const char* insn, int dst, int a, int b) {
  const TileConfig& c = check_dot(insn, dst, a, b);
  State& s = state();
  const int kq = c.colsb[a] / 4, nq = c.colsb[dst] / 4;
  auto byte = [](uint8_t v, bool is_signed) { return is_signed ? int32_t(int8_t(v)) : int32_t(v); };
  for (int m = 0; m < c.rows[dst]; ++m) {
    uint32_t tmp[kMaxColsb / 4];
    std::memcpy(tmp, s.data[dst][m], sizeof tmp);
    for (int k = 0; k < kq; ++k)
      for (int n = 0; n < nq; ++n) {
        // Each product fits in int32; the sums wrap modulo 2^32 (unsigned arithmetic).
        uint32_t acc = tmp[n];
        for (int i = 0; i < 4; ++i)
          acc += uint32_t(byte(s.data[a][m][4 * k + i], SA) * byte(s.data[b][k][4 * n + i], SB));
        tmp[n] = acc;
      }
    // write_row_and_zero: the row's bytes past colsb become zero.
    std::memset(s.data[dst][m], 0, kMaxColsb);
    std::memcpy(s.data[dst][m], tmp, size_t(c.colsb[dst]));
  }
  zero_rows_from(s, dst, c.rows[dst]);  // zero_upper_rows
  s.cfg.start_row = 0;
}

float bf16_at(const uint8_t* row, int i) {
  uint16_t h;
  std::memcpy(&h, row + 2 * i, 2);
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

void tdpbf16ps(int dst, int a, int b) {
  const TileConfig& c = check_dot("tdpbf16ps", dst, a, b);
  State& s = state();
  const int kq = c.colsb[a] / 4, nq = c.colsb[dst] / 4;
  for (int m = 0; m < c.rows[dst]; ++m) {
    float tmp[kMaxColsb / 4];
    std::memcpy(tmp, s.data[dst][m], sizeof tmp);
    for (int k = 0; k < kq; ++k)
      for (int n = 0; n < nq; ++n) {
        // The SDM's order: the odd pair's product, plus the even one's, into the sum.
        // (The hardware flushes denormals and may round differently; kernels on
        // tiles are tested against a bound, not bit for bit.)
        float t = bf16_at(s.data[a][m], 2 * k + 1) * bf16_at(s.data[b][k], 2 * n + 1);
        t += bf16_at(s.data[a][m], 2 * k) * bf16_at(s.data[b][k], 2 * n);
        tmp[n] += t;
      }
    std::memset(s.data[dst][m], 0, kMaxColsb);
    std::memcpy(s.data[dst][m], tmp, size_t(c.colsb[dst]));
  }
  zero_rows_from(s, dst, c.rows[dst]);
  s.cfg.start_row = 0;
}

void ldtilecfg(const TileConfig* mem) {
  TileConfig c;
  std::memcpy(&c, mem, sizeof c);
  const char* insn = "ldtilecfg";
  if (c.palette_id > 1) fault(insn, "#GP", "palette_id ", int(c.palette_id), " > 1");
  State& s = state();
  if (c.palette_id == 0) {  // the INIT state: no configuration, tiles zeroed
    s.configured = false;
    s.cfg = TileConfig{};
    std::memset(s.data, 0, sizeof s.data);
    return;
  }
  for (uint8_t b : c.reserved)
    if (b != 0) fault(insn, "#GP", "reserved bytes 2..15 are not zero");
  for (int t = kTiles; t < 16; ++t)
    if (c.colsb[t] != 0 || c.rows[t] != 0) fault(insn, "#GP", "palette 1 has 8 tiles, entry ", t, " is set");
  for (int t = 0; t < kTiles; ++t) {
    if (c.colsb[t] > kMaxColsb) fault(insn, "#GP", "tile ", t, " colsb ", int(c.colsb[t]), " > 64");
    if (c.rows[t] > kMaxRows) fault(insn, "#GP", "tile ", t, " rows ", int(c.rows[t]), " > 16");
    if ((c.rows[t] == 0) != (c.colsb[t] == 0)) fault(insn, "#GP", "tile ", t, ": one of rows and colsb is 0, not both");
  }
  s.cfg = c;
  std::memset(s.data, 0, sizeof s.data);
  s.configured = true;
}

void sttilecfg(TileConfig* mem) {
  const State& s = state();
  TileConfig c{};
  if (s.configured) c = s.cfg;
  std::memcpy(mem, &c, sizeof c);
}

void tilerelease() {
  State& s = state();
  s.configured = false;
  s.cfg = TileConfig{};
  std::memset(s.data, 0, sizeof s.data);
}

void tilezero(int tile) {
  State& s = use("tilezero", tile);
  zero_rows_from(s, tile, 0);
  s.cfg.start_row = 0;
}

void tileloadd(int tile, const void* base, int64_t stride) {
  State& s = use("tileloadd", tile);
  const int rows = s.cfg.rows[tile], nbytes = s.cfg.colsb[tile];
  int r = s.cfg.start_row;
  zero_rows_from(s, tile, r);
  for (; r < rows; ++r) std::memcpy(s.data[tile][r], static_cast<const uint8_t*>(base) + r * stride, size_t(nbytes));
  s.cfg.start_row = 0;
}

void tilestored(int tile, void* base, int64_t stride) {
  State& s = use("tilestored", tile);
  const int rows = s.cfg.rows[tile], nbytes = s.cfg.colsb[tile];
  for (int r = s.cfg.start_row; r < rows; ++r)
    std::memcpy(static_cast<uint8_t*>(base) + r * stride, s.data[tile][r], size_t(nbytes));
  s.cfg.start_row = 0;
}

void tdpbssd(int dst, int a, int b) { dot_bytes<true, true>("tdpbssd", dst, a, b); }
void tdpbsud(int dst, int a, int b) { dot_bytes<true, false>("tdpbsud", dst, a, b); }
void tdpbusd(int dst, int a, int b) { dot_bytes<false, true>("tdpbusd", dst, a, b); }
void tdpbuud(int dst, int a, int b) { dot_bytes<false, false>("tdpbuud", dst, a, b); }

}  // namespace halfbyte::kernels::amx::emu
