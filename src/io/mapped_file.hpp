// A read-only memory mapping of a whole file (RAII). Internal to src/io.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace halfbyte::io {

class MappedFile {
 public:
  // Throws Error(Io) naming the path and the OS error.
  explicit MappedFile(const std::string& path);
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  const std::string& path() const noexcept { return path_; }

  // Bytes [offset, offset + n) are not needed resident any more: the pages they
  // touch leave this process's memory (read from the file again if touched, so a
  // page shared with bytes still in use only costs a fault). For data copied
  // elsewhere at load, e.g. repacked weights.
  void drop(size_t offset, size_t n) const noexcept;

 private:
  void release() noexcept;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace halfbyte::io
