// `halfbyte embed --ray ...`: corpus-scale embedding on a Ray cluster is Python's
// job (Ray's API is Python), so this command hands its arguments to
// `python3 -m halfbyte.ray embed ...` (bindings/python/halfbyte/ray/cli.py) by
// exec, keeping the process (signals, exit status, terminal) the user started.
// Python: $HALFBYTE_PYTHON, else the python3 beside this executable (a pip
// install into a virtual environment puts both in its bin/), else python3 on PATH.
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "halfbyte/core/error.hpp"

namespace halfbyte::cli {
namespace {

std::string python_for_ray() {
  if (const char* env = std::getenv("HALFBYTE_PYTHON"); env && *env) return env;
  char self[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    std::string dir(self, size_t(n));
    dir.resize(dir.find_last_of('/') + 1);
    const std::string sibling = dir + "python3";
    if (::access(sibling.c_str(), X_OK) == 0) return sibling;
  }
  return "python3";
}

}  // namespace

bool wants_ray(const Args& args) {
  for (const std::string& a : args) {
    if (a == "--") break;
    if (a == "--ray" || a.rfind("--ray=", 0) == 0) return true;
  }
  return false;
}

int cmd_embed_ray(const Args& args) {
  const std::string python = python_for_ray();
  std::vector<std::string> argv_s = {python, "-m", "halfbyte.ray", "embed"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  ::execvp(argv[0], argv.data());
  throw_error(ErrorKind::Io, "halfbyte embed --ray runs Python's halfbyte.ray, but ", python,
              " cannot be started (", std::strerror(errno),
              "); install Python with `pip install 'halfbyte[ray]'`, or set HALFBYTE_PYTHON to its python");
}

}  // namespace halfbyte::cli
