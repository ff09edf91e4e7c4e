// GGUF v3 writing: metadata of every value type (arrays included, nested too) and
// tensors of any ggml type given as their raw bytes.
//
//   halfbyte::io::GgufWriter w;
//   w.set("general.architecture", {GgufType::STRING, std::string("llama")});
//   w.add_tensor("token_embd.weight", {n_embd, n_vocab}, GgmlType::Q4_0, bytes, nbytes);
//   w.write("model.gguf");
//
// The file is written to `path + ".tmp-<pid>"` and renamed to `path` only when
// complete, so an error, a cancelled progress callback or a killed process never
// leaves a partial file under `path` (the temporary file is removed on any error).
//
// Layout: "GGUF", u32 version 3, u64 tensor count, u64 metadata count, the
// metadata in the order set, the tensor table, padding to the alignment, then the
// tensors in the order added, each starting at a multiple of the alignment
// (general.alignment if set, which must be a u32 power of two; else 32).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "halfbyte/io/gguf.hpp"

namespace halfbyte::io {

class GgufWriter {
 public:
  // Called after each tensor's bytes are written with the fraction of the file
  // written (0..1]; return false to cancel: write() then removes the temporary
  // file and throws Error(ErrorKind::Runtime, "<path>: write cancelled").
  using Progress = std::function<bool(float fraction)>;

  // Sets a metadata value (replacing an earlier one of that key, keeping its place).
  // Checked here: the value's variant must hold what its type needs (an integer in
  // the type's range for u8..i64, a number for f32/f64, bool, string, and for an
  // array a non-null GgufArray whose items all have its element type). Throws
  // Error(InvalidArgument) naming the key.
  void set(std::string key, GgufValue value);
  void set(const std::map<std::string, GgufValue>& metadata);  // every entry, in key order

  // Adds a tensor: its GGUF shape ne (ne[0] fastest, 1 to 4 dims, each > 0, ne[0]
  // a multiple of the type's block size) and exactly the bytes that shape needs.
  // The bytes are not copied: they must stay valid until write() returns. Names
  // are unique, non-empty and at most 64 bytes (GGUF's limit). Throws
  // Error(InvalidArgument) naming the tensor.
  void add_tensor(std::string name, std::vector<int64_t> ne, GgmlType type, const void* data, size_t nbytes);

  size_t n_metadata() const noexcept { return kv_.size(); }
  size_t n_tensors() const noexcept { return tensors_.size(); }
  // The tensor data alignment write() will use.
  uint64_t alignment() const;

  // Writes the file (see the top of this header); progress, if given, is called
  // after the header and after each tensor. Throws Error(Io) naming the path and
  // the OS error if a file cannot be created, written or renamed. One write() per
  // path at a time: two writers of one path in one process share the temp name.
  void write(const std::string& path, const Progress& progress = {}) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> ne;
    GgmlType type;
    const uint8_t* data;
    size_t nbytes;
  };
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Tensor> tensors_;
};

// One call: every metadata entry and every tensor of `f` (e.g. a file opened with
// GgufFile::open) written to `path`. Used to round-trip and to rewrite files.
void write_gguf(const std::string& path, const GgufFile& f, const GgufWriter::Progress& progress = {});

}  // namespace halfbyte::io
