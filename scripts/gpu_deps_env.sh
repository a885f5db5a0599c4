# gpu_deps_env.sh (sourced): use_deps unpacks the .debs of $deps/debs (scripts/gpu_deps.sh) into a prefix
# under $work and points pkg-config (only there), the compiler and the loader at it; sets pkgconfig_exe.
#
# Each .deb is unpacked with dpkg-deb -x (ar + tar where dpkg is missing); the .pc files get the
# prefix's paths. HC_DEPS_PREFIX: the prefix; HC_DEPS_OWN_PKGCONF=1: the packages' pkgconf, not the system's.
use_deps() {
  local prefix=${HC_DEPS_PREFIX:-$work/deps}
  mkdir -p "$prefix"
  for deb in "$deps"/debs/*.deb; do
    if command -v dpkg-deb > /dev/null; then dpkg-deb -x "$deb" "$prefix"
    else (cd "$work" && rm -f data.tar.* && ar x "$deb" && tar -xf data.tar.* -C "$prefix") || return 1
    fi
  done
  local lib=$prefix/usr/lib/x86_64-linux-gnu pc=$prefix/pkgconfig
  mkdir -p "$pc"
  local f
  for f in "$lib/openblas-pthread/pkgconfig/openblas.pc" "$lib/pkgconfig/lapacke.pc" "$lib/pkgconfig/lua5.4.pc" \
           "$lib/pkgconfig/cunit.pc"; do
    [ -f "$f" ] || { echo "gpu_check: $f is not in the packages" >&2; return 1; }
    sed -e "s|=/usr|=$prefix/usr|g" -e "s|-I/usr/|-I$prefix/usr/|g" -e "s|-L/usr/|-L$prefix/usr/|g" "$f" > "$pc/$(basename "$f")"
  done
  # lapacke.pc requires lapack (OpenBLAS's); its header lapacke.h sits in include/, not the multiarch folder
  sed -e "s|=/usr|=$prefix/usr|g" -e "s|^Name: .*|Name: lapack|" "$lib/openblas-pthread/pkgconfig/lapack-openblas.pc" > "$pc/lapack.pc"
  sed -i -e "s|^Cflags: \(.*\)|Cflags: \1 -I$prefix/usr/include|" "$pc/lapacke.pc"
  export PKG_CONFIG_LIBDIR=$pc PKG_CONFIG_PATH=""
  export LD_LIBRARY_PATH=$lib/openblas-pthread:$lib:$prefix/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  # (no LIBRARY_PATH: pkgconf would take its folders for system ones and leave out their -L)
  if [ "${HC_DEPS_OWN_PKGCONF:-0}" != 1 ] && command -v pkg-config > /dev/null; then pkgconfig_exe=$(command -v pkg-config)
  else pkgconfig_exe=$prefix/usr/bin/pkgconf
  fi
  "$pkgconfig_exe" --exists openblas lapacke lua5.4 cunit || { echo "gpu_check: pkg-config does not find the packages in $pc" >&2; return 1; }
  # every header the build includes must be under the -I folders pkg-config gives (not only in /usr/include)
  local h m
  for m in "openblas cblas.h" "lapacke lapacke.h" "lua5.4 lua.h" "cunit CUnit/CUnit.h"; do
    set -- $m
    local found=0
    for d in $("$pkgconfig_exe" --cflags-only-I "$1" | sed 's/-I//g'); do [ -f "$d/$2" ] && found=1; done
    [ $found = 1 ] || { echo "gpu_check: $2 is not under the include folders of $1" >&2; return 1; }
  done
  deps_prefix=$prefix
  return 0
}

