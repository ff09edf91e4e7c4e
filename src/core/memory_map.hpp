// Anonymous memory that is resident only where it has been written (internal):
// the KV cache and the activation scratch are sized once for n_ctx / n_batch and
// cost physical memory only as far as they are used. Also: how much of a range is
// resident in this process (for Model::memory()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace halfbyte {

class AnonMap {
 public:
  AnonMap() = default;
  // Throws Error(InvalidArgument) naming `what` if `bytes` exceeds physical memory,
  // std::bad_alloc if the mapping fails.
  AnonMap(size_t bytes, const std::string& what);
  AnonMap(const AnonMap&) = delete;
  AnonMap& operator=(const AnonMap&) = delete;
  AnonMap(AnonMap&& o) noexcept;
  AnonMap& operator=(AnonMap&& o) noexcept;
  ~AnonMap();

  uint8_t* data() noexcept { return mem_; }
  const uint8_t* data() const noexcept { return mem_; }
  size_t bytes() const noexcept { return bytes_; }
  // Gives the physical pages back to the system (madvise DONTNEED): the mapping
  // stays, reads as zeros, and costs memory again only where written.
  void discard() noexcept;

 private:
  void release() noexcept;
  uint8_t* mem_ = nullptr;
  size_t bytes_ = 0;
};

// Hands out 64-byte aligned float arrays from one AnonMap, sized up front:
//   ScratchArena a({n1, n2}, "what"); float* x = a.take(n1); float* y = a.take(n2);
class ScratchArena {
 public:
  ScratchArena() = default;
  explicit ScratchArena(size_t total_floats, size_t n_arrays, const std::string& what);
  float* take(size_t n);  // throws Error(Runtime) past the size given
  const AnonMap& map() const noexcept { return map_; }

 private:
  AnonMap map_;
  size_t used_ = 0;
};

// Bytes of [p, p + n) whose pages are present in this process's page tables
// (/proc/self/pagemap), or nothing where that cannot be read.
std::optional<size_t> resident_bytes(const void* p, size_t n);

}  // namespace halfbyte
