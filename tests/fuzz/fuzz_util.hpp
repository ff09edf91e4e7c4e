// Shared pieces of the libFuzzer targets (one fuzz_*.cpp per parser entry point).
//
// The parsers take paths and memory-map them, so each input is written to a file
// in a per-process scratch directory (/dev/shm when writable). The targets call
// a parser and catch halfbyte::Error only: any other exception escaping, a
// sanitizer report, a broken invariant (check() traps), a timeout or an
// allocation over libFuzzer's limits is a finding.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "halfbyte/core/error.hpp"
#include "halfbyte/io/gguf.hpp"
#include "halfbyte/model/tokenizer.hpp"
#include "halfbyte/model/wordpiece.hpp"

namespace halfbyte::fuzz {

// An invariant the parsers promise; a broken one is reported like a crash.
#define HB_FUZZ_CHECK(cond)                                                                 \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "fuzz: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

// A per-process scratch directory (removed at exit; a crashed run leaves it).
class Scratch {
 public:
  static Scratch& get() {
    static Scratch s;
    return s;
  }
  // Writes `n` bytes to <dir>/<name>, then extends the file with a hole to
  // `size` bytes if larger (a sparse file costs no memory until read).
  std::string write(const std::string& name, const uint8_t* data, size_t n, uint64_t size = 0) {
    const std::string path = dir_ + "/" + name;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) die("open", path);
    for (size_t done = 0; done < n;) {
      const ssize_t w = ::write(fd, data + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) die("write", path);
      done += size_t(w);
    }
    if (size > n && ::ftruncate(fd, off_t(size)) != 0) die("ftruncate", path);
    ::close(fd);
    files_.insert(path);
    return path;
  }
  // Creates the folder <dir>/<name> (once; removed at exit, after its files), for
  // parsers that read several files of one folder. Returns its path; write() then
  // takes "<name>/<file>".
  std::string subdir(const std::string& name) {
    const std::string path = dir_ + "/" + name;
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) die("mkdir", path);
    dirs_.insert(path);
    return path;
  }
  const std::string& dir() const { return dir_; }

 private:
  // In $HALFBYTE_FUZZ_SCRATCH if set (.ci/fuzz removes it afterwards), else
  // /dev/shm, else $TMPDIR or /tmp.
  Scratch() {
    const char* env = std::getenv("HALFBYTE_FUZZ_SCRATCH");
    const char* tmp = std::getenv("TMPDIR");
    const std::string base = env && *env                          ? env
                             : ::access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                             : tmp && *tmp                     ? tmp
                                                               : "/tmp";
    if (::mkdir(base.c_str(), 0700) != 0 && errno != EEXIST) die("mkdir", base);
    dir_ = base + "/halfbyte-fuzz-" + std::to_string(::getpid());
    if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) die("mkdir", dir_);
  }
  ~Scratch() {
    for (const std::string& f : files_) ::unlink(f.c_str());
    for (auto d = dirs_.rbegin(); d != dirs_.rend(); ++d) ::rmdir(d->c_str());
    ::rmdir(dir_.c_str());
  }
  [[noreturn]] static void die(const char* what, const std::string& path) {
    std::fprintf(stderr, "fuzz: %s %s: %s\n", what, path.c_str(), std::strerror(errno));
    std::abort();
  }
  std::string dir_;
  std::set<std::string> files_;
  std::set<std::string> dirs_;
};

// With HALFBYTE_FUZZ_VERBOSE=1 in the environment, says how far an input got
// (e.g. when running a target on one file to see why it is refused).
void note(const char* stage, const Error* e = nullptr);

// Reads every metadata value through the accessor of its type and checks the
// reader's promises (array items of the array's type, bounded nesting).
void check_value(const io::GgufValue& v, const std::string& key, int depth);

// Walks the metadata and the tensor table of an opened file: every tensor's
// shape, byte size and extent are consistent and inside its mapped file.
void check_file(const io::GgufFile& f);

// Encodes and decodes a few fixed strings (ASCII, UTF-8, invalid bytes, special
// token texts) and renders token pieces; every id must be in range.
void exercise_tokenizer(const model::Tokenizer& tok);

// Tokenizer::from_gguf, then exercise_tokenizer if the vocabulary loads.
void try_tokenizer(const io::GgufFile& f);

// The same for a WordPiece tokenizer (BERT encoders): encode / encode_pair with
// and without truncation, tokenize, words; every id in range, one token type per
// id, truncation honoured, the special ids in range.
void exercise_wordpiece(const model::WordPieceTokenizer& tok);

}  // namespace halfbyte::fuzz
