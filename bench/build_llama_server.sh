#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` (a peer of bench/server_vs_peers.py) from the
# llama.cpp tree vendored in the llama-cpp-python 0.3.36 sdist, i.e. the same
# llama.cpp that `bash .ci/peers` installs for Python. Prints the binary's path
# last. Idempotent: an existing binary is not rebuilt. About 8-10 min on 2 cores.
#
#   bash bench/build_llama_server.sh [BUILD_DIR] [--python-server]
#
# BUILD_DIR defaults to /tmp/llama-server-build; the binary ends up in
# BUILD_DIR/build/bin/llama-server. --python-server also installs with pip the
# dependencies of llama-cpp-python's `[server]` extra (fastapi, uvicorn, ...)
# without touching llama-cpp-python itself (which `bash .ci/peers` must have
# installed first), so that `python3 -m llama_cpp.server` works.
#
# Flags beyond the usual Release/native build:
#   -mno-amx-*                    llama.cpp's AMX path crashes on some of our CPUs
#   LLAMA_USE_PREBUILT_UI=OFF     otherwise the build downloads the web UI (no network
#   LLAMA_BUILD_UI=OFF            here; npm is not used either): the server has no UI
#   LLAMA_OPENSSL=OFF             no HTTPS needed on 127.0.0.1; no libssl-dev needed
#   LLAMA_CURL=OFF                asked for; obsolete in this llama.cpp (no libcurl use)
#   BUILD_SHARED_LIBS=OFF         one self-contained binary
set -euo pipefail

build_dir=/tmp/llama-server-build
python_server=0
for arg in "$@"; do
  case "$arg" in
    --python-server) python_server=1 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "build_llama_server.sh: unknown option $arg" >&2; exit 2 ;;
    *) build_dir="$arg" ;;
  esac
done

repo="$(cd "$(dirname "$0")/.." && pwd)"
version=0.3.36
sdist_dir="$repo/models/peers"
sdist="$sdist_dir/llama_cpp_python-$version.tar.gz"
src="$build_dir/llama_cpp_python-$version/vendor/llama.cpp"
bin="$build_dir/build/bin/llama-server"

if [ "$python_server" = 1 ]; then
  # The [server] extra's requirements, from the sdist's pyproject.toml. Installing
  # them by name (not 'llama-cpp-python[server]') keeps pip from rebuilding llama.cpp.
  if ! python3 -c "import llama_cpp" 2>/dev/null; then
    echo "build_llama_server.sh: llama_cpp is not importable; run 'bash .ci/peers' first" >&2
    exit 1
  fi
  python3 -m pip install -q --disable-pip-version-check \
    'uvicorn>=0.22.0' 'fastapi>=0.100.0' 'pydantic-settings>=2.0.1' \
    'sse-starlette>=1.6.1' 'starlette-context>=0.3.6,<0.4' 'PyYAML>=5.1'
  python3 -m llama_cpp.server --help >/dev/null
  echo "llama_cpp.server: importable" >&2
fi

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

if [ ! -f "$sdist" ]; then
  mkdir -p "$sdist_dir"
  python3 -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    --no-build-isolation "llama-cpp-python==$version" -d "$sdist_dir"
fi

mkdir -p "$build_dir"
if [ ! -f "$src/CMakeLists.txt" ]; then
  tar -xzf "$sdist" -C "$build_dir"
fi

no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
cmake -S "$src" -B "$build_dir/build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DCMAKE_C_FLAGS="$no_amx" -DCMAKE_CXX_FLAGS="$no_amx" \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
  -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$build_dir/build" --target llama-server -j2 >&2

"$bin" --version >&2 2>&1 || true
echo "$bin"
