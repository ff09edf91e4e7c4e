// The only place that knows which ISAs exist. Reads HALFBYTE_ISA once; set_isa()
// switches tables at run time (not meant to race with running kernels).
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <mutex>
#include <string>

#include "halfbyte/core/error.hpp"
#include "halfbyte/runtime.hpp"
#include "cpu_features.hpp"
#include "kernel_table.hpp"

namespace halfbyte::kernels {
namespace {

struct Entry {
  const char* name;
  void (*fill)(KernelTable&);
  bool (*supported)();
  const char* base;       // entry whose kernels fill the gaps (nullptr: none)
  bool by_default = true;  // false: only when asked for by name
};

bool always() { return true; }

#if defined(HALFBYTE_HAVE_AVX2_KERNELS) || defined(HALFBYTE_HAVE_AVX512_KERNELS)
bool has_avx2() {
  const CpuFeatures& f = cpu_features();
  return f.avx2 && f.fma && f.f16c;
}
bool has_avx512() {
  const CpuFeatures& f = cpu_features();
  return has_avx2() && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni;
}
#endif
#if defined(HALFBYTE_HAVE_AVX512_KERNELS)
// avx512's kernels, and its prompt attention on bf16 dot products where the CPU has
// AVX512_BF16 (HALFBYTE_BF16_ATTENTION=0 leaves it out: fp32 attention throughout).
void fill_avx512(KernelTable& t) {
  avx512::fill(t);
#if defined(HALFBYTE_HAVE_AVX512BF16_KERNELS)
  const char* env = std::getenv("HALFBYTE_BF16_ATTENTION");
  if (cpu_features().avx512bf16 && !(env && std::strcmp(env, "0") == 0)) {
    t.attend_block_bf16[0] = avx512::bf16_attend_block(false);
    t.attend_block_bf16[1] = avx512::bf16_attend_block(true);
  }
#endif
}
#endif
#if defined(HALFBYTE_HAVE_AMX_KERNELS)
// amx builds on the avx512 table; the tile instructions need CPUID's AMX-TILE and
// AMX-INT8, the OS's tile state in XCR0, and Linux's permission (cpu_features.cpp).
bool has_amx() {
  const CpuFeatures& f = cpu_features();
  return has_avx512() && f.amx_tile && f.amx_int8 && f.amx_os && f.amx_granted;
}
std::string why_no_amx() {
  const CpuFeatures& f = cpu_features();
  if (!f.amx_tile && !f.amx_int8) return "this CPU has no AMX-TILE and no AMX-INT8";
  if (!f.amx_tile) return "this CPU has no AMX-TILE";
  if (!f.amx_int8) return "this CPU has no AMX-INT8";
  if (!has_avx512()) return "this CPU lacks the AVX-512 features of the avx512 kernels amx builds on";
  if (!f.amx_os) return "the OS has not enabled the AMX tile state (XCR0 bits 17-18)";
  if (!f.amx_granted) {
    std::string why = "Linux refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM): ";
    why += f.amx_refused_errno ? std::strerror(f.amx_refused_errno) : "not requested (not Linux)";
    if (f.amx_refused_errno == ENOSPC) why += " (an alternate signal stack of some thread is too small for it)";
    if (f.amx_refused_errno == EINVAL) why += " (Linux 5.16 or later is needed)";
    return why;
  }
  return "";
}
// The tile kernels on their C++ emulation: for tests, asked for by name.
bool emulation_asked() {
  const char* e = std::getenv("HALFBYTE_AMX_EMULATION");
  return e && *e && std::strcmp(e, "0") != 0;
}
bool has_amx_emulated() { return has_avx512() && emulation_asked(); }
#endif
#if defined(HALFBYTE_HAVE_NEON_KERNELS)
bool has_neon_dotprod() { return cpu_features().neon && cpu_features().dotprod; }
bool has_neon_i8mm() { return has_neon_dotprod() && cpu_features().i8mm; }
#endif

// Worst first; the default is the last one the CPU supports.
const Entry kEntries[] = {
    {"scalar", scalar::fill, always, nullptr},
#if defined(HALFBYTE_HAVE_AVX2_KERNELS)
    {"avx2", avx2::fill, has_avx2, "scalar"},
#endif
#if defined(HALFBYTE_HAVE_AVX512_KERNELS) && defined(HALFBYTE_HAVE_AVX2_KERNELS)
    {"avx512", fill_avx512, has_avx512, "avx2"},
#elif defined(HALFBYTE_HAVE_AVX512_KERNELS)
    {"avx512", fill_avx512, has_avx512, "scalar"},
#endif
#if defined(HALFBYTE_HAVE_AMX_KERNELS)
    {"amx", amx::fill, has_amx, "avx512"},
    {"amx_emulated", amx::fill_emulated, has_amx_emulated, "avx512", false},
#endif
#if defined(HALFBYTE_HAVE_NEON_KERNELS)
    {"neon", neon::fill, has_neon_dotprod, "scalar"},
    {"neon_i8mm", neon_i8mm::fill, has_neon_i8mm, "neon"},
#endif
};

KernelTable g_tables[std::size(kEntries)];
std::once_flag g_filled[std::size(kEntries)];
std::atomic<const KernelTable*> g_active{nullptr};
std::once_flag g_init;

void fill_chain(int i, KernelTable& t);

// Entry i's table, filled on first use: only tables of ISAs this CPU runs (a fill()
// is compiled with its ISA's flags, and the compiler may use them for its own
// stores: AVX-512 fill() on an AVX2 CPU raised SIGILL), and amx_emulated's only
// once HALFBYTE_AMX_EMULATION asks for it (it may be set after the first call).
const KernelTable& table(size_t i) {
  std::call_once(g_filled[i], [i] { fill_chain(int(i), g_tables[i]); });
  return g_tables[i];
}

const Entry* find(std::string_view name) {
  for (const Entry& e : kEntries)
    if (name == e.name) return &e;
  return nullptr;
}

void select(std::string_view name) {
  const Entry* e = find(name);
  static const char* const kAllKnown[] = {"scalar", "avx2", "avx512", "amx", "amx_emulated", "neon", "neon_i8mm"};
  if (!e && std::find(std::begin(kAllKnown), std::end(kAllKnown), name) != std::end(kAllKnown))
    throw_error(ErrorKind::Unsupported, "ISA '", name, "' is not part of this build (",
#if defined(__x86_64__)
                "x86-64"
#elif defined(__aarch64__)
                "aarch64"
#else
                "this architecture"
#endif
                ")");
  if (!e) {
    std::string known;
    for (const Entry& k : kEntries) known += std::string(known.empty() ? "" : ", ") + k.name;
    throw_invalid("unknown ISA '", name, "' (this build has: ", known, ")");
  }
#if defined(HALFBYTE_HAVE_AMX_KERNELS)
  if (!e->supported() && name == "amx") throw_error(ErrorKind::Unsupported, "ISA 'amx' is not available: ", why_no_amx());
  if (!e->supported() && name == "amx_emulated")
    throw_error(ErrorKind::Unsupported, "ISA 'amx_emulated' is not available: ",
                has_avx512() ? "it is offered only with HALFBYTE_AMX_EMULATION=1 in the environment (tests; far slower than avx512)"
                             : "the emulated tile kernels need the CPU features of avx512");
#endif
  if (!e->supported())
    throw_error(ErrorKind::Unsupported, "ISA '", name, "' is not supported by this CPU (it has: ",
                cpu_feature_string(), ")");
  g_active.store(&table(size_t(e - kEntries)), std::memory_order_release);
}

// An entry's table: its base's kernels, then its own on top.
void fill_chain(int i, KernelTable& t) {
  if (kEntries[i].base) fill_chain(int(find(kEntries[i].base) - kEntries), t);
  kEntries[i].fill(t);
  t.isa = kEntries[i].name;
}

void init() {
  const char* env = std::getenv("HALFBYTE_ISA");
  if (env && *env) {
    try {
      select(env);
    } catch (const Error& e) {
      throw Error(e.kind(), std::string("HALFBYTE_ISA: ") + e.what());
    }
    return;
  }
  for (size_t i = std::size(kEntries); i-- > 0;)
    if (kEntries[i].by_default && kEntries[i].supported()) {
      g_active.store(&table(i), std::memory_order_release);
      return;
    }
}

}  // namespace

const KernelTable& active() {
  std::call_once(g_init, init);
  return *g_active.load(std::memory_order_acquire);
}

}  // namespace halfbyte::kernels

namespace halfbyte {

std::string isa() { return kernels::active().isa; }

std::vector<std::string> compiled_isas() {
  std::vector<std::string> out;
  for (const auto& e : kernels::kEntries) out.emplace_back(e.name);
  return out;
}

std::vector<std::string> available_isas() {
  kernels::active();
  std::vector<std::string> out;
  for (const auto& e : kernels::kEntries)
    if (e.supported()) out.emplace_back(e.name);
  return out;
}

void set_isa(std::string_view name) {
  kernels::active();
  kernels::select(name);
}

}  // namespace halfbyte
