// The only place that knows which ISAs exist. Reads HALFBYTE_ISA once; set_isa()
// switches tables at run time (not meant to race with running kernels).
#include <atomic>
#include <cstdlib>
#include <iterator>
#include <mutex>
#include <string>

#include "halfbyte/core/error.hpp"
#include "halfbyte/runtime.hpp"
#include "kernel_table.hpp"

namespace halfbyte::kernels {
namespace {

struct Entry {
  const char* name;
  void (*fill)(KernelTable&);
  bool (*supported)();
};

bool always() { return true; }

// Worst first. The SIMD ISAs join this list with their kernels.
const Entry kEntries[] = {
    {"scalar", scalar::fill, always},
};

KernelTable g_tables[std::size(kEntries)];
std::atomic<const KernelTable*> g_active{nullptr};
std::once_flag g_init;

const Entry* find(std::string_view name) {
  for (const Entry& e : kEntries)
    if (name == e.name) return &e;
  return nullptr;
}

void select(std::string_view name) {
  const Entry* e = find(name);
  if (!e) {
    std::string known;
    for (const Entry& k : kEntries) known += std::string(known.empty() ? "" : ", ") + k.name;
    throw_invalid("unknown ISA '", name, "' (this build has: ", known, ")");
  }
  if (!e->supported())
    throw_error(ErrorKind::Unsupported, "ISA '", name, "' is not supported by this CPU");
  g_active.store(&g_tables[size_t(e - kEntries)], std::memory_order_release);
}

void init() {
  for (size_t i = 0; i < std::size(kEntries); ++i) kEntries[i].fill(g_tables[i]);
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
    if (kEntries[i].supported()) {
      g_active.store(&g_tables[i], std::memory_order_release);
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
