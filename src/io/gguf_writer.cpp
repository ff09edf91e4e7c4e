// GGUF v3 writer (layout in gguf_writer.hpp and gguf.cpp). Values are checked when
// set, tensors when added; write() only encodes and does file I/O.
#include "halfbyte/io/gguf_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <variant>

#include "halfbyte/core/error.hpp"

namespace halfbyte::io {
namespace {

constexpr uint64_t kDefaultAlignment = 32;
constexpr size_t kMaxName = 64;  // GGUF: tensor names are at most 64 bytes

// True if the integer in v is representable in the integer type t.
bool int_fits(GgufType t, const GgufValue& v) {
  int64_t lo = 0;
  uint64_t hi = 0;
  switch (t) {
    case GgufType::U8: hi = 0xFF; break;
    case GgufType::I8: lo = -128; hi = 127; break;
    case GgufType::U16: hi = 0xFFFF; break;
    case GgufType::I16: lo = -32768; hi = 32767; break;
    case GgufType::U32: hi = 0xFFFFFFFFu; break;
    case GgufType::I32: lo = std::numeric_limits<int32_t>::min(); hi = uint64_t(std::numeric_limits<int32_t>::max()); break;
    case GgufType::U64: hi = std::numeric_limits<uint64_t>::max(); break;
    case GgufType::I64: lo = std::numeric_limits<int64_t>::min(); hi = uint64_t(std::numeric_limits<int64_t>::max()); break;
    default: return false;
  }
  if (const auto* u = std::get_if<uint64_t>(&v.v)) return *u <= hi;
  if (const auto* i = std::get_if<int64_t>(&v.v)) return *i >= lo && (*i < 0 || uint64_t(*i) <= hi);
  return false;
}

bool is_int_type(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
    case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}

// An integer value as uint64 (range-checked already: the cast is exact).
uint64_t as_u(const GgufValue& v) {
  if (const auto* u = std::get_if<uint64_t>(&v.v)) return *u;
  return uint64_t(std::get<int64_t>(v.v));
}

double number(const GgufValue& v) {
  if (const auto* d = std::get_if<double>(&v.v)) return *d;
  if (const auto* u = std::get_if<uint64_t>(&v.v)) return double(*u);
  return double(std::get<int64_t>(v.v));
}

// Throws Error(InvalidArgument) unless v can be written as type t.
void check_value(const std::string& key, GgufType t, const GgufValue& v, int depth) {
  auto bad = [&](const std::string& why) { throw_invalid("gguf writer: metadata '", key, "': ", why); };
  if (uint32_t(t) > uint32_t(GgufType::F64)) bad("unknown value type " + std::to_string(uint32_t(t)));
  if (v.type != t)
    bad(std::string("an item of an array of ") + gguf_type_name(t) + " has type " + gguf_type_name(v.type));
  if (is_int_type(t)) {
    if (!v.is_integer()) bad(std::string("a ") + gguf_type_name(t) + " value must hold an integer");
    if (!int_fits(t, v)) {
      const auto* u = std::get_if<uint64_t>(&v.v);
      bad((u ? std::to_string(*u) : std::to_string(std::get<int64_t>(v.v))) + " does not fit in " + gguf_type_name(t));
    }
    return;
  }
  switch (t) {
    case GgufType::F32:
    case GgufType::F64: {
      if (!std::holds_alternative<double>(v.v) && !v.is_integer())
        bad(std::string("a ") + gguf_type_name(t) + " value must hold a number");
      const double d = number(v);
      if (t == GgufType::F32 && std::isfinite(d) && std::fabs(d) > double(std::numeric_limits<float>::max()))
        bad(std::to_string(d) + " does not fit in f32 (use f64)");
      return;
    }
    case GgufType::BOOL:
      if (!std::holds_alternative<bool>(v.v)) bad("a bool value must hold a bool");
      return;
    case GgufType::STRING:
      if (!std::holds_alternative<std::string>(v.v)) bad("a string value must hold a string");
      return;
    case GgufType::ARRAY: {
      const auto* a = std::get_if<std::shared_ptr<GgufArray>>(&v.v);
      if (!a || !*a) bad("an array value must hold a GgufArray");
      if (depth >= 4) bad("arrays nested deeper than 4 levels (the reader's limit)");
      for (const GgufValue& item : (*a)->items) check_value(key, (*a)->type, item, depth + 1);
      return;
    }
    default: return;
  }
}

// Little-endian encoding into a byte string (the header and metadata).
class Encoder {
 public:
  template <class T>
  void pod(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.append(b, sizeof(T));
  }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    out += s;
  }
  void value(const GgufValue& v) {
    switch (v.type) {
      case GgufType::U8: pod<uint8_t>(uint8_t(as_u(v))); break;
      case GgufType::I8: pod<int8_t>(int8_t(as_i(v))); break;
      case GgufType::U16: pod<uint16_t>(uint16_t(as_u(v))); break;
      case GgufType::I16: pod<int16_t>(int16_t(as_i(v))); break;
      case GgufType::U32: pod<uint32_t>(uint32_t(as_u(v))); break;
      case GgufType::I32: pod<int32_t>(int32_t(as_i(v))); break;
      case GgufType::U64: pod<uint64_t>(as_u(v)); break;
      case GgufType::I64: pod<int64_t>(as_i(v)); break;
      case GgufType::F32: pod<float>(float(number(v))); break;
      case GgufType::F64: pod<double>(number(v)); break;
      case GgufType::BOOL: pod<uint8_t>(std::get<bool>(v.v) ? 1 : 0); break;
      case GgufType::STRING: str(std::get<std::string>(v.v)); break;
      case GgufType::ARRAY: {
        const GgufArray& a = *std::get<std::shared_ptr<GgufArray>>(v.v);
        pod<uint32_t>(uint32_t(a.type));
        pod<uint64_t>(a.items.size());
        for (const GgufValue& item : a.items) value(item);
        break;
      }
    }
  }
  std::string out;

 private:
  static int64_t as_i(const GgufValue& v) {
    if (const auto* i = std::get_if<int64_t>(&v.v)) return *i;
    return int64_t(std::get<uint64_t>(v.v));
  }
};

uint64_t round_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

// The file being written: `<path>.tmp-<pid>`, renamed to `path` by commit(),
// removed by the destructor otherwise.
class TempFile {
 public:
  explicit TempFile(const std::string& path) : path_(path), tmp_(path + ".tmp-" + std::to_string(::getpid())) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd_ < 0) throw_error(ErrorKind::Io, path_, ": cannot create ", tmp_, ": ", std::strerror(errno));
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }

  void write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const size_t chunk = std::min<size_t>(n, size_t(1) << 30);
      const ssize_t w = ::write(fd_, p, chunk);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("cannot write");
      }
      p += w;
      n -= size_t(w);
      written_ += uint64_t(w);
    }
  }
  void zeros(uint64_t n) {
    static const char z[256] = {};
    while (n > 0) {
      const size_t k = size_t(std::min<uint64_t>(n, sizeof(z)));
      write(z, k);
      n -= k;
    }
  }
  uint64_t written() const noexcept { return written_; }

  void commit() {
    if (::fsync(fd_) != 0 && errno != EINVAL) fail("cannot flush");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("cannot close");
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
      throw_error(ErrorKind::Io, path_, ": cannot rename ", tmp_, " to it: ", std::strerror(errno));
    committed_ = true;
  }

 private:
  [[noreturn]] void fail(const char* what) const {
    throw_error(ErrorKind::Io, path_, ": ", what, " ", tmp_, ": ", std::strerror(errno));
  }
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

}  // namespace

void GgufWriter::set(std::string key, GgufValue value) {
  if (key.empty()) throw_invalid("gguf writer: a metadata key is empty");
  check_value(key, value.type, value, 0);
  if (key == "general.alignment") {
    if (value.type != GgufType::U32) throw_invalid("gguf writer: general.alignment must be a u32, got ", gguf_type_name(value.type));
    const uint64_t a = as_u(value);
    if (a == 0 || a > 65536 || (a & (a - 1)) != 0)
      throw_invalid("gguf writer: general.alignment = ", a, " is not a power of two in [1, 65536]");
  }
  for (auto& kv : kv_)
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  kv_.emplace_back(std::move(key), std::move(value));
}

void GgufWriter::set(const std::map<std::string, GgufValue>& metadata) {
  for (const auto& [k, v] : metadata) set(k, v);
}

void GgufWriter::add_tensor(std::string name, std::vector<int64_t> ne, GgmlType type, const void* data,
                            size_t nbytes) {
  const std::string at = "gguf writer: tensor '" + name + "'";
  if (name.empty()) throw_invalid("gguf writer: a tensor name is empty");
  if (name.size() > kMaxName)
    throw_invalid(at, ": the name is ", name.size(), " bytes, GGUF allows at most ", kMaxName);
  for (const Tensor& t : tensors_)
    if (t.name == name) throw_invalid(at, " is added twice");
  if (!ggml_type_known(uint32_t(type))) throw_invalid(at, ": unknown ggml type ", uint32_t(type));
  const GgmlTypeInfo& ti = ggml_type_info(type);
  if (ne.empty() || ne.size() > 4) throw_invalid(at, ": ", ne.size(), " dimensions (1 to 4)");
  uint64_t numel = 1;
  for (size_t d = 0; d < ne.size(); ++d) {
    if (ne[d] <= 0 || uint64_t(ne[d]) > uint64_t(std::numeric_limits<int64_t>::max()) / numel)
      throw_invalid(at, ": dimension ne[", d, "] = ", ne[d], " is not positive or overflows");
    numel *= uint64_t(ne[d]);
  }
  if (ne[0] % ti.block != 0)
    throw_invalid(at, ": ne[0] = ", ne[0], " is not a multiple of the ", ti.name, " block size ", ti.block);
  const uint64_t blocks = numel / uint64_t(ti.block);
  if (blocks > std::numeric_limits<uint64_t>::max() / uint64_t(ti.block_bytes) ||
      blocks * uint64_t(ti.block_bytes) != nbytes)
    throw_invalid(at, ": ", nbytes, " bytes given, ", numel, " ", ti.name, " elements need ",
                  blocks * uint64_t(ti.block_bytes));
  if (!data && nbytes) throw_invalid(at, ": no data");
  tensors_.push_back({std::move(name), std::move(ne), type, static_cast<const uint8_t*>(data), nbytes});
}

uint64_t GgufWriter::alignment() const {
  for (const auto& kv : kv_)
    if (kv.first == "general.alignment") return as_u(kv.second);
  return kDefaultAlignment;
}

void GgufWriter::write(const std::string& path, const Progress& progress) const {
  const uint64_t align = alignment();
  Encoder e;
  e.pod<uint32_t>(0x46554747u);  // "GGUF"
  e.pod<uint32_t>(3);
  e.pod<uint64_t>(tensors_.size());
  e.pod<uint64_t>(kv_.size());
  for (const auto& [key, v] : kv_) {
    e.str(key);
    e.pod<uint32_t>(uint32_t(v.type));
    e.value(v);
  }
  uint64_t offset = 0;  // relative to the data section
  for (const Tensor& t : tensors_) {
    e.str(t.name);
    e.pod<uint32_t>(uint32_t(t.ne.size()));
    for (int64_t n : t.ne) e.pod<uint64_t>(uint64_t(n));
    e.pod<uint32_t>(uint32_t(t.type));
    e.pod<uint64_t>(offset);
    offset = round_up(offset + t.nbytes, align);
  }
  const uint64_t data_start = round_up(e.out.size(), align);
  const uint64_t total = data_start + offset;
  auto report = [&](uint64_t done) {
    if (progress && !progress(total ? float(double(done) / double(total)) : 1.0f))
      throw_error(ErrorKind::Runtime, path, ": write cancelled");
  };

  TempFile f(path);
  f.write(e.out.data(), e.out.size());
  f.zeros(data_start - e.out.size());
  report(f.written());
  for (const Tensor& t : tensors_) {
    f.write(t.data, t.nbytes);
    f.zeros(round_up(t.nbytes, align) - t.nbytes);
    report(f.written());
  }
  f.commit();
}

void write_gguf(const std::string& path, const GgufFile& f, const GgufWriter::Progress& progress) {
  GgufWriter w;
  w.set(f.metadata());
  for (const GgufTensorInfo& t : f.tensors()) w.add_tensor(t.name, t.ne, t.type, f.data(t), size_t(t.nbytes));
  w.write(path, progress);
}

}  // namespace halfbyte::io
