#include "core/memory_map.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <new>
#include <utility>
#include <vector>

#include "halfbyte/core/error.hpp"

namespace halfbyte {

AnonMap::AnonMap(size_t bytes, const std::string& what) : bytes_(bytes) {
  if (bytes == 0) return;
  // Sizes follow from metadata: refuse (rather than let the OS kill us later)
  // what the machine cannot hold.
  const double phys = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
  if (phys > 0 && double(bytes) > phys)
    throw_error(ErrorKind::InvalidArgument, what, " needs ", double(bytes) / 1e9, " GB, more than this machine's ",
                phys / 1e9, " GB (choose a smaller size)");
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  mem_ = static_cast<uint8_t*>(p);
}

AnonMap::AnonMap(AnonMap&& o) noexcept { *this = std::move(o); }

AnonMap& AnonMap::operator=(AnonMap&& o) noexcept {
  if (this != &o) {
    release();
    mem_ = std::exchange(o.mem_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

AnonMap::~AnonMap() { release(); }

void AnonMap::discard() noexcept {
  if (mem_) ::madvise(mem_, bytes_, MADV_DONTNEED);
}

void AnonMap::release() noexcept {
  if (mem_) ::munmap(mem_, bytes_);
  mem_ = nullptr;
  bytes_ = 0;
}

namespace {
constexpr size_t kAlignFloats = 16;  // 64 bytes
}

ScratchArena::ScratchArena(size_t total_floats, size_t n_arrays, const std::string& what)
    : map_((total_floats + n_arrays * kAlignFloats) * sizeof(float), what) {}

float* ScratchArena::take(size_t n) {
  const size_t at = (used_ + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
  if ((at + n) * sizeof(float) > map_.bytes())
    throw_error(ErrorKind::Runtime, "scratch arena: ", n, " floats asked past its size");
  used_ = at + n;
  return reinterpret_cast<float*>(map_.data()) + at;
}

std::optional<size_t> resident_bytes(const void* p, size_t n) {
  if (n == 0) return size_t(0);
  const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p) / page, end = (reinterpret_cast<uintptr_t>(p) + n + page - 1) / page;
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  // One 64-bit entry per page; bit 63: present in RAM.
  std::vector<uint64_t> buf(4096);
  size_t present = 0;
  bool ok = true;
  for (uintptr_t pg = begin; pg < end && ok;) {
    const size_t count = std::min<size_t>(buf.size(), end - pg);
    const ssize_t got = ::pread(fd, buf.data(), count * 8, off_t(pg * 8));
    if (got != ssize_t(count * 8)) ok = false;
    else
      for (size_t i = 0; i < count; ++i) present += (buf[i] >> 63) & 1;
    pg += count;
  }
  ::close(fd);
  if (!ok) return std::nullopt;
  return present * page;
}

}  // namespace halfbyte
