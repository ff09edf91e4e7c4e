// GGUF (v2 and v3) reading. The file is memory-mapped; every offset, size, count
// and string length is checked against the file size before use, so a truncated
// or hostile file gives a halfbyte::Error (ErrorKind::Format) that names the file
// and the field, never a crash or an unbounded allocation.
//
// Shapes are given as in GGUF: ne[0] is the fastest-varying dimension (a weight
// W[N, K] is stored with ne = {K, N}).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace halfbyte::io {

class MappedFile;

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);

// ggml tensor types that halfbyte knows by name (others are refused when read).
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, I8 = 24,
  I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30,
};
struct GgmlTypeInfo {
  const char* name;
  int block;           // elements per block
  int block_bytes;     // bytes per block
};
// Throws Error(Format) for a type id this build does not know.
const GgmlTypeInfo& ggml_type_info(GgmlType t);
bool ggml_type_known(uint32_t id);

struct GgufValue;
struct GgufArray {
  GgufType type;                  // element type
  std::vector<GgufValue> items;
};

// One metadata value. Integers are kept as int64/uint64 (with the GGUF type
// remembered); arrays own their items.
struct GgufValue {
  GgufType type = GgufType::U8;
  std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<GgufArray>> v;

  bool is_integer() const noexcept;
  // Converting accessors; throw Error(Format) naming `key` on a type mismatch or
  // an integer out of range.
  int64_t as_int(std::string_view key) const;
  double as_float(std::string_view key) const;
  bool as_bool(std::string_view key) const;
  const std::string& as_string(std::string_view key) const;
  const GgufArray& as_array(std::string_view key) const;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // GGUF order, ne[0] fastest
  GgmlType type;
  uint64_t offset;          // absolute byte offset in its file
  uint64_t nbytes;
  uint32_t source = 0;      // which mapped file holds the data (0 for GGUF)
  int64_t numel() const noexcept;
};

class GgufFile {
 public:
  // Opens and validates the header, metadata and tensor table (tensor data is
  // mapped, not read). Throws Error(Io) if the file cannot be opened, Error(Format)
  // if its content is malformed.
  static GgufFile open(const std::string& path);

  // The same view over another format's bytes (llama2.c, safetensors): metadata
  // under GGUF's keys and tensors that point into `maps[t.source]`. Checks every
  // tensor's extent against its mapped file. `format` names the source format.
  static GgufFile assemble(std::string path, std::string format, std::vector<std::unique_ptr<MappedFile>> maps,
                           std::map<std::string, GgufValue> metadata, std::vector<GgufTensorInfo> tensors);

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  const std::string& path() const noexcept { return path_; }
  const std::string& format() const noexcept { return format_; }  // "gguf", "llama2.c", "safetensors"
  uint32_t version() const noexcept { return version_; }          // GGUF version (0 for other formats)
  uint64_t alignment() const noexcept { return alignment_; }
  uint64_t file_size() const noexcept { return size_; }  // all mapped files together

  const std::map<std::string, GgufValue>& metadata() const noexcept { return kv_; }
  bool has(std::string_view key) const;
  const GgufValue& get(std::string_view key) const;  // throws Error(Format) if absent
  // Typed getters with a default for absent keys.
  int64_t get_int(std::string_view key, int64_t fallback) const;
  double get_float(std::string_view key, double fallback) const;
  std::string get_string(std::string_view key, const std::string& fallback) const;

  const std::vector<GgufTensorInfo>& tensors() const noexcept { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  const GgufTensorInfo& tensor(std::string_view name) const;  // throws if absent
  const uint8_t* data(const GgufTensorInfo& t) const noexcept { return bases_[t.source] + t.offset; }
  // The tensor's bytes were copied elsewhere (e.g. repacked): its mapped pages leave
  // this process's resident memory; reading it again still works (from the file).
  void release_pages(const GgufTensorInfo& t) const noexcept;
  // The same for bytes [begin, end) of the tensor's data (and the rest of the pages
  // they touch).
  void release_pages(const GgufTensorInfo& t, uint64_t begin, uint64_t end) const noexcept;
  // The read-only mappings of the file(s): (address, bytes) each.
  std::vector<std::pair<const uint8_t*, size_t>> mappings() const;

  // Sets (or replaces) a metadata value: how a separate tokenizer file joins a model.
  void set(std::string key, GgufValue value) { kv_[std::move(key)] = std::move(value); }
  // Removes a metadata value (no-op if absent): e.g. a vocabulary once a tokenizer holds it.
  void erase(std::string_view key) { kv_.erase(std::string(key)); }
  // Renames a tensor, or with an empty `to` drops it: how another layout's tensor
  // names become GGUF's (HF BERT -> llama.cpp's bert). Throws Error(Format) if
  // `from` is absent or `to` is taken. Invalidates pointers to tensors().
  void rename_tensor(std::string_view from, std::string to);

 private:
  GgufFile() = default;
  std::string path_;
  std::string format_ = "gguf";
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t size_ = 0;
  std::vector<std::unique_ptr<MappedFile>> maps_;
  std::vector<const uint8_t*> bases_;  // maps_[i]->data()
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> by_name_;
};

}  // namespace halfbyte::io
