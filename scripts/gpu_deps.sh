#!/usr/bin/env bash
# gpu_deps.sh: prepares, on a machine with internet, what scripts/gpu_check.sh needs on a GPU machine
# without it: the Debian packages of OpenBLAS, LAPACKE, Lua 5.4, CUnit and pkgconf (apt-get download,
# no installation) and stories260K, in the git-ignored folder gpu-deps/ that travels with the tree.
# Usage: scripts/gpu_deps.sh [DIR]   (default gpu-deps beside scripts/; then pass it to the run tool's carry)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/gpu-deps}
shared=${HC_SHARED_DIR:-$root/../shared}
# OpenBLAS (pthread build: libopenblas, and the libblas.so.3 / liblapack.so.3 that LAPACKE loads),
# LAPACKE and its test-matrix library, Fortran runtime, Lua 5.4, CUnit, and pkgconf itself (CMake's
# FindPkgConfig needs a pkg-config, which the GPU image may lack).
pkgs=(libopenblas0-pthread libopenblas-pthread-dev libgfortran5 libquadmath0 liblapacke liblapacke-dev libtmglib3
      liblua5.4-0 liblua5.4-dev libcunit1 libcunit1-dev pkgconf pkgconf-bin libpkgconf3)
mkdir -p "$dir/debs" "$dir/models"
rm -f "$dir"/debs/*.deb
(cd "$dir/debs" && apt-get download "${pkgs[@]}")
for f in stories260K.bin tok512.bin; do
  src=$shared/models/stories260K/$f
  [ -f "$src" ] || { echo "gpu_deps: $src is missing (set HC_SHARED_DIR)" >&2; exit 1; }
  cp "$src" "$dir/models/"
done
n=$(ls "$dir"/debs/*.deb | wc -l)
[ "$n" -eq "${#pkgs[@]}" ] || { echo "gpu_deps: $n of ${#pkgs[@]} packages downloaded" >&2; exit 1; }
size=$(du -sk "$dir" | cut -f1)
echo "gpu_deps: $n packages and stories260K in $dir ($((size / 1024)) MiB; the tree that travels may hold 64 MiB)" >&2
[ "$size" -lt $((32 * 1024)) ] || { echo "gpu_deps: $dir is over 32 MiB" >&2; exit 1; }
