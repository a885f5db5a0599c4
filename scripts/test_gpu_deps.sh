#!/usr/bin/env bash
# test_gpu_deps.sh: proves, here, that a build needs nothing but the packages of gpu-deps/: unpacks them as
# gpu_check.sh does, configures with pkg-config limited to that prefix (its own pkgconf), builds and tests.
# Usage: scripts/test_gpu_deps.sh [DEPS_DIR]   (default gpu-deps; CUDA off here: nvcc needs none of them)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps=${1:-$root/gpu-deps}
work=$(mktemp -d "${TMPDIR:-/tmp}/hc-deps-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
ls "$deps"/debs/*.deb > /dev/null 2>&1 || { echo "test_gpu_deps: SKIP: no $deps/debs (run scripts/gpu_deps.sh)"; exit 0; }
. "$root/scripts/gpu_deps_env.sh"
HC_DEPS_OWN_PKGCONF=1 use_deps
echo "test_gpu_deps: prefix $deps_prefix, pkg-config $pkgconfig_exe, PKG_CONFIG_LIBDIR=$PKG_CONFIG_LIBDIR"
for m in openblas lapacke lua5.4 cunit; do
  flags=$("$pkgconfig_exe" --cflags --libs "$m")
  echo "  $m: $flags"
  case "$flags" in *"-I/usr/"*|*"-L/usr/"*) echo "test_gpu_deps: $m points outside the prefix" >&2; exit 1 ;; esac
done
cmake -S "$root" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DHC_WITH_CUDA=OFF -DPKG_CONFIG_EXECUTABLE="$pkgconfig_exe" > "$work/cmake.log"
grep -E "Found (openblas|lapacke|lua5.4|cunit)|Checking for module" "$work/cmake.log" || true
for v in OPENBLAS LAPACKE LUA CUNIT; do # the folders CMake links from are the prefix's
  line=$(grep "^${v}_LIBRARY_DIRS:INTERNAL=" "$work/build/CMakeCache.txt" || true)
  echo "  $line"
  case "$line" in *"$deps_prefix"*) ;; *) echo "test_gpu_deps: $v is not linked from the prefix" >&2; exit 1 ;; esac
done
cmake --build "$work/build" -j"${JOBS:-2}" --target hcinfer test_abi test_ops test_lua_host > "$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log"; exit 1; }
# the binaries load the prefix's libraries (LD_LIBRARY_PATH) and run
ldd "$work/build/lib/libhc.so" | grep -E "openblas|lua|lapacke" | sed 's/^/  /'
ldd "$work/build/lib/libhc.so" | grep -E "openblas|lua" | grep -q "$deps_prefix" || { echo "test_gpu_deps: libhc does not load the prefix's libraries" >&2; exit 1; }
"$work/build/bin/test_abi" > /dev/null && "$work/build/bin/test_ops" > /dev/null && "$work/build/bin/test_lua_host" > /dev/null
"$work/build/bin/hcinfer" plugins > /dev/null
echo "test_gpu_deps: OK: built and tested against $deps alone"
