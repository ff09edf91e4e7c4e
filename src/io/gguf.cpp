// GGUF reader. Layout (little-endian):
//   "GGUF" u32 version, u64 tensor_count, u64 kv_count,
//   kv_count x (string key, u32 type, value), tensor_count x (string name,
//   u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset), padding to
//   general.alignment, tensor data (offsets relative to the data start).
// A string is u64 length + bytes; an array is u32 element type, u64 count, items.
#include "halfbyte/io/gguf.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "halfbyte/core/error.hpp"
#include "io/mapped_file.hpp"

namespace halfbyte::io {
namespace {

constexpr uint64_t kMaxDims = 4;
constexpr int kMaxArrayDepth = 4;
// Array values of one file, all arrays together. Each is ~48 bytes in memory
// however small in the file (a u8 is one byte there): the cap bounds what a
// hostile file can make the reader allocate (~400 MB), far above real
// vocabularies (tokens + scores + types + merges: ~1M values for 256k tokens).
constexpr uint64_t kMaxArrayItems = uint64_t(1) << 23;
// Metadata keys and tensors of one file: each costs a few hundred bytes in
// memory for ~13 / ~32 in the file. Real models have < 100 keys and < 10k tensors.
constexpr uint64_t kMaxKeys = uint64_t(1) << 20;
constexpr uint64_t kMaxTensors = uint64_t(1) << 20;

const GgmlTypeInfo kTypes[] = {
    {"f32", 1, 4},       {"f16", 1, 2},     {"q4_0", 32, 18},   {"q4_1", 32, 20},  {nullptr, 0, 0},
    {nullptr, 0, 0},     {"q5_0", 32, 22},  {"q5_1", 32, 24},   {"q8_0", 32, 34},  {"q8_1", 32, 36},
    {"q2_K", 256, 84},   {"q3_K", 256, 110}, {"q4_K", 256, 144}, {"q5_K", 256, 176}, {"q6_K", 256, 210},
    {"q8_K", 256, 292},  {nullptr, 0, 0},   {nullptr, 0, 0},    {nullptr, 0, 0},   {nullptr, 0, 0},
    {nullptr, 0, 0},     {nullptr, 0, 0},   {nullptr, 0, 0},    {nullptr, 0, 0},   {"i8", 1, 1},
    {"i16", 1, 2},       {"i32", 1, 4},     {"i64", 1, 8},      {"f64", 1, 8},     {nullptr, 0, 0},
    {"bf16", 1, 2},
};

// What a read is for, in error messages: a string literal, or a callable that
// builds the text only when a read fails (reading an array item must not cost
// a copy of its key).
inline std::string describe(const char* what) { return what; }
template <class F>
std::string describe(const F& what) {
  return what();
}

// Bounds-checked cursor over the mapped bytes.
class Reader {
 public:
  Reader(const std::string& path, const uint8_t* p, uint64_t size) : path_(path), p_(p), size_(size) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  template <class What>
  void need(uint64_t n, const What& what) const {
    if (n > remaining())
      throw_error(ErrorKind::Format, path_, ": truncated while reading ", describe(what), " at offset ", pos_,
                  " (need ", n, " bytes, ", remaining(), " left)");
  }
  template <class T, class What>
  T read(const What& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  template <class What>
  std::string string(const What& what) {
    const uint64_t n = read<uint64_t>([&] { return describe(what) + " length"; });
    need(n, [&] { return describe(what) + " (" + std::to_string(n) + " bytes)"; });
    std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(n));
    pos_ += n;
    return s;
  }
  [[noreturn]] void fail(const std::string& msg) const { throw_error(ErrorKind::Format, path_, ": ", msg); }

  // Counts metadata values held in arrays, against kMaxArrayItems.
  void count_items(uint64_t n, const std::string& key) {
    if (n > kMaxArrayItems - items_)
      fail("metadata arrays hold more than " + std::to_string(kMaxArrayItems) + " values in all (at '" + key +
           "'): refused, as no model's metadata is that large");
    items_ += n;
  }

 private:
  const std::string& path_;
  const uint8_t* p_;
  uint64_t size_;
  uint64_t pos_ = 0;
  uint64_t items_ = 0;
};

// Smallest encoded size of one value of type t (for bounding array counts).
uint64_t min_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: case GgufType::STRING: return 8;
    case GgufType::ARRAY: return 12;
  }
  return 1;
}

GgufValue read_value(Reader& r, GgufType type, const std::string& key, int depth) {
  GgufValue v;
  v.type = type;
  const auto what = [&] { return "value of '" + key + "'"; };
  switch (type) {
    case GgufType::U8: v.v = uint64_t(r.read<uint8_t>(what)); break;
    case GgufType::I8: v.v = int64_t(r.read<int8_t>(what)); break;
    case GgufType::U16: v.v = uint64_t(r.read<uint16_t>(what)); break;
    case GgufType::I16: v.v = int64_t(r.read<int16_t>(what)); break;
    case GgufType::U32: v.v = uint64_t(r.read<uint32_t>(what)); break;
    case GgufType::I32: v.v = int64_t(r.read<int32_t>(what)); break;
    case GgufType::U64: v.v = r.read<uint64_t>(what); break;
    case GgufType::I64: v.v = r.read<int64_t>(what); break;
    case GgufType::F32: v.v = double(r.read<float>(what)); break;
    case GgufType::F64: v.v = r.read<double>(what); break;
    case GgufType::BOOL: {
      const uint8_t b = r.read<uint8_t>(what);
      if (b > 1) r.fail("metadata '" + key + "': bool value " + std::to_string(b) + " is not 0 or 1");
      v.v = b != 0;
      break;
    }
    case GgufType::STRING: v.v = r.string(what); break;
    case GgufType::ARRAY: {
      if (depth >= kMaxArrayDepth) r.fail("metadata '" + key + "': arrays nested deeper than 4");
      const uint32_t et = r.read<uint32_t>([&] { return "array type of '" + key + "'"; });
      if (et > uint32_t(GgufType::F64))
        r.fail("metadata '" + key + "': unknown array element type " + std::to_string(et));
      const uint64_t n = r.read<uint64_t>([&] { return "array length of '" + key + "'"; });
      const GgufType etype = GgufType(et);
      if (n > r.remaining() / min_size(etype))
        r.fail("metadata '" + key + "': array of " + std::to_string(n) + " " + gguf_type_name(etype) +
               " does not fit in the " + std::to_string(r.remaining()) + " bytes left");
      r.count_items(n, key);
      auto arr = std::make_shared<GgufArray>();
      arr->type = etype;
      arr->items.reserve(size_t(n));
      for (uint64_t i = 0; i < n; ++i) arr->items.push_back(read_value(r, etype, key, depth + 1));
      v.v = std::move(arr);
      break;
    }
    default:
      r.fail("metadata '" + key + "': unknown value type " + std::to_string(uint32_t(type)));
  }
  return v;
}

[[noreturn]] void type_error(std::string_view key, const GgufValue& v, const char* want) {
  throw_error(ErrorKind::Format, "gguf: metadata '", key, "' is ", gguf_type_name(v.type), ", expected ", want);
}

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                      "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = uint32_t(t);
  return i < std::size(names) ? names[i] : "unknown";
}

bool ggml_type_known(uint32_t id) { return id < std::size(kTypes) && kTypes[id].name != nullptr; }

const GgmlTypeInfo& ggml_type_info(GgmlType t) {
  if (!ggml_type_known(uint32_t(t))) throw_error(ErrorKind::Format, "unknown ggml tensor type ", uint32_t(t));
  return kTypes[uint32_t(t)];
}

bool GgufValue::is_integer() const noexcept {
  return std::holds_alternative<uint64_t>(v) || std::holds_alternative<int64_t>(v);
}

int64_t GgufValue::as_int(std::string_view key) const {
  if (const auto* u = std::get_if<uint64_t>(&v)) {
    if (*u > uint64_t(std::numeric_limits<int64_t>::max()))
      throw_error(ErrorKind::Format, "gguf: metadata '", key, "' = ", *u, " is out of range");
    return int64_t(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&v)) return *i;
  type_error(key, *this, "an integer");
}

double GgufValue::as_float(std::string_view key) const {
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (is_integer()) return double(as_int(key));
  type_error(key, *this, "a number");
}

bool GgufValue::as_bool(std::string_view key) const {
  if (const auto* b = std::get_if<bool>(&v)) return *b;
  type_error(key, *this, "bool");
}

const std::string& GgufValue::as_string(std::string_view key) const {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  type_error(key, *this, "string");
}

const GgufArray& GgufValue::as_array(std::string_view key) const {
  if (const auto* a = std::get_if<std::shared_ptr<GgufArray>>(&v)) return **a;
  type_error(key, *this, "array");
}

int64_t GgufTensorInfo::numel() const noexcept {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

GgufFile GgufFile::open(const std::string& path) {
  GgufFile f;
  f.path_ = path;
  f.maps_.push_back(std::make_unique<MappedFile>(path));
  f.bases_.push_back(f.maps_[0]->data());
  f.size_ = f.maps_[0]->size();
  Reader r(f.path_, f.bases_[0], f.size_);

  const uint32_t magic = r.read<uint32_t>("magic");
  if (magic != 0x46554747u) r.fail("not a GGUF file (magic is not 'GGUF')");
  f.version_ = r.read<uint32_t>("version");
  if (f.version_ != 2 && f.version_ != 3)
    r.fail("GGUF version " + std::to_string(f.version_) + " is not supported (2 or 3)");
  const uint64_t n_tensors = r.read<uint64_t>("tensor count");
  const uint64_t n_kv = r.read<uint64_t>("metadata count");
  // Each kv needs >= 13 bytes, each tensor info >= 24: bound counts before looping.
  if (n_kv > r.remaining() / 13) r.fail("metadata count " + std::to_string(n_kv) + " exceeds the file size");
  if (n_kv > kMaxKeys)
    r.fail("metadata count " + std::to_string(n_kv) + " is more than the " + std::to_string(kMaxKeys) + " keys read");
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = r.string([&] { return "metadata key #" + std::to_string(i); });
    const uint32_t t = r.read<uint32_t>([&] { return "type of '" + key + "'"; });
    if (t > uint32_t(GgufType::F64)) r.fail("metadata '" + key + "': unknown value type " + std::to_string(t));
    GgufValue v = read_value(r, GgufType(t), key, 0);
    if (f.kv_.count(key)) r.fail("metadata key '" + key + "' appears twice");
    f.kv_.emplace(std::move(key), std::move(v));
  }
  if (f.has("general.alignment")) {
    const GgufValue& av = f.get("general.alignment");
    if (!av.is_integer())
      r.fail(std::string("general.alignment is ") + gguf_type_name(av.type) + ", expected an integer");
    const auto* u = std::get_if<uint64_t>(&av.v);
    const int64_t a = u ? (*u > 65536 ? 0 : int64_t(*u)) : std::get<int64_t>(av.v);
    if (a <= 0 || a > 65536 || (a & (a - 1)) != 0)
      r.fail("general.alignment = " + (u ? std::to_string(*u) : std::to_string(a)) +
             " is not a power of two in [1, 65536]");
    f.alignment_ = uint64_t(a);
  }

  if (n_tensors > r.remaining() / 24) r.fail("tensor count " + std::to_string(n_tensors) + " exceeds the file size");
  if (n_tensors > kMaxTensors)
    r.fail("tensor count " + std::to_string(n_tensors) + " is more than the " + std::to_string(kMaxTensors) +
           " tensors read");
  std::vector<uint64_t> rel_offsets;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = r.string([&] { return "tensor name #" + std::to_string(i); });
    const std::string at = "tensor '" + t.name + "'";
    const uint32_t nd = r.read<uint32_t>([&] { return at + " n_dims"; });
    if (nd == 0 || nd > kMaxDims) r.fail(at + ": n_dims = " + std::to_string(nd) + " (must be 1..4)");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t n = r.read<uint64_t>([&] { return at + " ne[" + std::to_string(d) + "]"; });
      if (n == 0 || n > uint64_t(std::numeric_limits<int64_t>::max()) || numel > uint64_t(INT64_MAX) / n)
        r.fail(at + ": dimension ne[" + std::to_string(d) + "] = " + std::to_string(n) + " is invalid");
      numel *= n;
      t.ne.push_back(int64_t(n));
    }
    const uint32_t type = r.read<uint32_t>([&] { return at + " type"; });
    if (!ggml_type_known(type)) r.fail(at + ": unknown ggml type " + std::to_string(type));
    t.type = GgmlType(type);
    const GgmlTypeInfo& ti = kTypes[type];
    if (t.ne[0] % ti.block != 0)
      r.fail(at + ": ne[0] = " + std::to_string(t.ne[0]) + " is not a multiple of the " + ti.name +
             " block size " + std::to_string(ti.block));
    // Bounded by the file size before multiplying: the byte count cannot wrap.
    if (numel / uint64_t(ti.block) > f.size_ / uint64_t(ti.block_bytes))
      r.fail(at + ": " + std::to_string(numel) + " " + ti.name + " elements need more bytes than the file's " +
             std::to_string(f.size_));
    t.nbytes = numel / uint64_t(ti.block) * uint64_t(ti.block_bytes);
    const uint64_t off = r.read<uint64_t>([&] { return at + " offset"; });
    if (off % f.alignment_ != 0)
      r.fail(at + ": offset " + std::to_string(off) + " is not aligned to " + std::to_string(f.alignment_));
    rel_offsets.push_back(off);
    if (f.by_name_.count(t.name)) r.fail("tensor name '" + t.name + "' appears twice");
    f.by_name_.emplace(t.name, f.tensors_.size());
    f.tensors_.push_back(std::move(t));
  }
  // The data section starts at the next multiple of the alignment.
  const uint64_t data_start = (r.pos() + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  for (size_t i = 0; i < f.tensors_.size(); ++i) {
    GgufTensorInfo& t = f.tensors_[i];
    const uint64_t off = rel_offsets[i];
    if (data_start > f.size_ || off > f.size_ - data_start || t.nbytes > f.size_ - data_start - off)
      r.fail("tensor '" + t.name + "' extends past the end of the file (data offset " + std::to_string(data_start) +
             " + " + std::to_string(off) + " + " + std::to_string(t.nbytes) + " > " + std::to_string(f.size_) + ")");
    t.offset = data_start + off;
  }
  // Metadata and tensor table are parsed into copies: their pages (MBs for a
  // vocabulary) need not stay resident in this process.
  f.maps_[0]->drop(0, size_t(std::min(data_start, f.size_)));
  return f;
}

GgufFile GgufFile::assemble(std::string path, std::string format, std::vector<std::unique_ptr<MappedFile>> maps,
                            std::map<std::string, GgufValue> metadata, std::vector<GgufTensorInfo> tensors) {
  GgufFile f;
  f.path_ = std::move(path);
  f.format_ = std::move(format);
  f.maps_ = std::move(maps);
  for (const auto& m : f.maps_) {
    f.bases_.push_back(m->data());
    f.size_ += m->size();
  }
  f.kv_ = std::move(metadata);
  f.tensors_ = std::move(tensors);
  for (size_t i = 0; i < f.tensors_.size(); ++i) {
    const GgufTensorInfo& t = f.tensors_[i];
    if (t.source >= f.maps_.size())
      throw_error(ErrorKind::Runtime, f.path_, ": tensor '", t.name, "' refers to file #", t.source, " of ",
                  f.maps_.size());
    const uint64_t size = f.maps_[t.source]->size();
    if (t.offset > size || t.nbytes > size - t.offset)
      throw_error(ErrorKind::Format, f.maps_[t.source]->path(), ": tensor '", t.name, "' extends past the end of the file (",
                  t.offset, " + ", t.nbytes, " > ", size, ")");
    if (!f.by_name_.emplace(t.name, i).second)
      throw_error(ErrorKind::Format, f.path_, ": tensor name '", t.name, "' appears twice");
  }
  return f;
}

void GgufFile::release_pages(const GgufTensorInfo& t) const noexcept {
  if (t.source < maps_.size()) maps_[t.source]->drop(size_t(t.offset), size_t(t.nbytes));
}

std::vector<std::pair<const uint8_t*, size_t>> GgufFile::mappings() const {
  std::vector<std::pair<const uint8_t*, size_t>> out;
  for (const auto& m : maps_) out.emplace_back(m->data(), m->size());
  return out;
}

void GgufFile::release_pages(const GgufTensorInfo& t, uint64_t begin, uint64_t end) const noexcept {
  end = std::min(end, t.nbytes);
  if (t.source < maps_.size() && begin < end) maps_[t.source]->drop(size_t(t.offset + begin), size_t(end - begin));
}

bool GgufFile::has(std::string_view key) const { return kv_.find(std::string(key)) != kv_.end(); }

const GgufValue& GgufFile::get(std::string_view key) const {
  const auto it = kv_.find(std::string(key));
  if (it == kv_.end()) throw_error(ErrorKind::Format, path_, ": metadata key '", key, "' is missing");
  return it->second;
}

int64_t GgufFile::get_int(std::string_view key, int64_t fallback) const {
  return has(key) ? get(key).as_int(key) : fallback;
}
double GgufFile::get_float(std::string_view key, double fallback) const {
  return has(key) ? get(key).as_float(key) : fallback;
}
std::string GgufFile::get_string(std::string_view key, const std::string& fallback) const {
  return has(key) ? get(key).as_string(key) : fallback;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

void GgufFile::rename_tensor(std::string_view from, std::string to) {
  const auto it = by_name_.find(from);
  if (it == by_name_.end()) throw_error(ErrorKind::Format, path_, ": tensor '", from, "' is missing");
  const size_t i = it->second;
  if (to.empty()) {
    tensors_.erase(tensors_.begin() + std::ptrdiff_t(i));
  } else {
    if (to != from && by_name_.count(to)) throw_error(ErrorKind::Format, path_, ": tensor '", to, "' appears twice");
    tensors_[i].name = std::move(to);
  }
  by_name_.clear();
  for (size_t k = 0; k < tensors_.size(); ++k) by_name_.emplace(tensors_[k].name, k);
}

const GgufTensorInfo& GgufFile::tensor(std::string_view name) const {
  const GgufTensorInfo* t = find_tensor(name);
  if (!t) throw_error(ErrorKind::Format, path_, ": tensor '", name, "' is missing");
  return *t;
}

}  // namespace halfbyte::io
