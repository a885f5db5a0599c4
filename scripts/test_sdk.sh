#!/usr/bin/env bash
# test_sdk.sh: the SDK as a plugin author meets it: installs hcinfer into a temporary prefix, builds
# the out-of-tree examples against it alone, runs them in hcinfer, and checks the loader's refusals.
# usage: scripts/test_sdk.sh [BUILD_DIR]   (without one, builds into build-sdk). Exit 1 on any failure.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
[ "$jobs" -gt 2 ] && jobs=2
unset HC_PLUGIN_PATH

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hc-sdk.XXXXXX")
tmp=$(realpath "$tmp")
if [ -n "${HC_SDK_KEEP:-}" ]; then echo "test_sdk: keeping $tmp"; else trap 'rm -rf "$tmp"' EXIT; fi
P=$tmp/prefix
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() {
    failed=$((failed + 1))
    echo "FAIL $1"
    [ -n "${2:-}" ] && [ -s "$2" ] && tail -n 25 "$2" | sed 's/^/     | /'
    return 0
}
# check DESCRIPTION COMMAND...: runs the command, output to $tmp/last.log; passes when it exits 0
check() {
    local what=$1
    shift
    if "$@" >"$tmp/last.log" 2>&1; then ok "$what"; else bad "$what (exit $?)" "$tmp/last.log"; fi
}
# expect DESCRIPTION FILE TEXT: passes when FILE holds TEXT (fixed string)
expect() {
    if grep -qF -- "$3" "$2"; then ok "$1"; else bad "$1: '$3' not found" "$2"; fi
}

# ---------------------------------------------------------------- build and install
if [ $# -ge 1 ]; then
    build=$(realpath "$1")
    [ -f "$build/CMakeCache.txt" ] || { echo "test_sdk: $1 is not a configured build folder"; exit 1; }
    if grep -q '^HC_SANITIZE:BOOL=ON' "$build/CMakeCache.txt"; then
        # plugins and programs built here without ASan cannot load an ASan-instrumented libhc
        echo "test_sdk: $1 is a sanitizer build; give a build folder without HC_SANITIZE"
        exit 1
    fi
else
    build=$root/build-sdk
    echo "== configure and build hcinfer in $build"
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DHC_BUILD_TESTS=OFF >"$tmp/configure.log" 2>&1 ||
        { cat "$tmp/configure.log"; exit 1; }
fi
echo "== build $build (up to date is fine)"
cmake --build "$build" -j"$jobs" >"$tmp/build.log" 2>&1 || { tail -n 40 "$tmp/build.log"; exit 1; }

echo "== install into $P"
check "cmake --install $build --prefix P" cmake --install "$build" --prefix "$P"

for f in bin/hcinfer lib/libhc.so lib/pkgconfig/hcinfer.pc lib/cmake/hcinfer/hcinfer-config.cmake \
         lib/cmake/hcinfer/hcinfer-config-version.cmake; do
    if [ -e "$P/$f" ]; then ok "installed $f"; else bad "installed $f: missing"; fi
done
missing=""
for f in "$build"/lib/hcinfer/plugins/*.so; do
    [ -e "$f" ] || continue
    [ -e "$P/lib/hcinfer/plugins/$(basename "$f")" ] || missing="$missing $(basename "$f")"
done
n_plugins=$(ls "$P"/lib/hcinfer/plugins/*.so 2>/dev/null | wc -l)
if [ -z "$missing" ] && [ "$n_plugins" -gt 0 ]; then ok "installed $n_plugins built-in plugins in lib/hcinfer/plugins"
else bad "built-in plugins in lib/hcinfer/plugins: missing${missing:- all}"; fi
missing=""
for f in "$root"/sdk/include/hc/*.h; do [ -e "$P/include/hc/$(basename "$f")" ] || missing="$missing $(basename "$f")"; done
if [ -z "$missing" ]; then ok "installed every public header in include/hc"; else bad "public headers missing:$missing"; fi
missing=""
for d in policies pipelines; do
    [ -d "$root/scripts/$d" ] || continue
    while IFS= read -r f; do
        [ -e "$P/share/hcinfer/$d/${f#"$root/scripts/$d/"}" ] || missing="$missing ${f#"$root/"}"
    done < <(find "$root/scripts/$d" -name '*.lua')
done
if [ -z "$missing" ]; then ok "installed the Lua scripts in share/hcinfer"; else bad "Lua scripts missing:$missing"; fi

# ---------------------------------------------------------------- public headers stand alone
echo "== each public header compiles alone with only -I P/include"
mkdir -p "$tmp/hdr"
for h in "$P"/include/hc/*.h; do
    name=$(basename "$h" .h)
    isa=""   # hc_avx2.h / hc_avx512.h are for files built for that ISA (they #error otherwise)
    [ "$name" = hc_avx2 ] && isa="-mavx2 -mfma -mf16c"
    [ "$name" = hc_avx512 ] && isa="-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl"
    printf '#include <hc/%s.h>\n#include <hc/%s.h>\nint main(void) { return 0; }\n' "$name" "$name" >"$tmp/hdr/$name.c"
    check "hc/$name.h (C11, -Wall -Wextra -pedantic -Werror)" \
        cc -std=c11 -Wall -Wextra -pedantic -Werror $isa -I "$P/include" -c "$tmp/hdr/$name.c" -o "$tmp/hdr/$name.o"
    if command -v c++ >/dev/null; then
        cp "$tmp/hdr/$name.c" "$tmp/hdr/$name.cc"
        check "hc/$name.h (C++)" c++ -Wall -Wextra -Werror $isa -I "$P/include" -c "$tmp/hdr/$name.cc" -o "$tmp/hdr/$name.oo"
    fi
done

# ---------------------------------------------------------------- installed binaries run from the prefix
echo "== the installed hcinfer runs from its prefix and finds its own plugins"
check "P/bin/hcinfer plugins" env -u LD_LIBRARY_PATH "$P/bin/hcinfer" plugins
cp "$tmp/last.log" "$tmp/plugins-installed.txt"
expect "plugins are loaded from P/lib/hcinfer/plugins" "$tmp/plugins-installed.txt" "$P/lib/hcinfer/plugins/hc-"
if grep -qF "$build/" "$tmp/plugins-installed.txt"; then bad "the installed hcinfer loads plugins from the build folder" "$tmp/plugins-installed.txt"
else ok "nothing is loaded from the build folder"; fi
mv "$P" "$tmp/moved"
check "a moved prefix still runs (hcinfer plugins)" env -u LD_LIBRARY_PATH "$tmp/moved/bin/hcinfer" plugins
expect "the moved prefix loads its own plugins" "$tmp/last.log" "$tmp/moved/lib/hcinfer/plugins/hc-"
mv "$tmp/moved" "$P"

# ---------------------------------------------------------------- the examples, with the CMake package
echo "== build the examples out of tree against P (CMake package)"
mkdir -p "$tmp/src" "$tmp/b"
cp -r "$root/sdk/examples/quant_sym4" "$root/sdk/examples/comp_scalar" "$tmp/src/"
configure_example() {   # configure_example NAME BUILD_DIR [EXTRA_C_FLAGS]
    cmake -S "$tmp/src/$1" -B "$2" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$P" \
        -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF \
        -DCMAKE_C_FLAGS="-Wall -Wextra -Werror ${3:-}"
}
for ex in quant_sym4 comp_scalar; do
    check "configure $ex" configure_example "$ex" "$tmp/b/$ex"
    found=$(sed -n 's/^hcinfer_DIR:PATH=//p' "$tmp/b/$ex/CMakeCache.txt" 2>/dev/null)
    if [ "$found" = "$P/lib/cmake/hcinfer" ]; then ok "$ex found hcinfer in P"; else bad "$ex found hcinfer in '$found', not in P"; fi
    check "build $ex" cmake --build "$tmp/b/$ex" -j"$jobs"
    check "ctest $ex (kernel against the reference)" ctest --test-dir "$tmp/b/$ex" --output-on-failure
done
so_sym4=$tmp/b/quant_sym4/hc-quant-sym4.so
so_scalar=$tmp/b/comp_scalar/hc-comp-scalar.so
if [ -f "$so_sym4" ] && [ -f "$so_scalar" ]; then ok "modules are named hc-quant-sym4.so, hc-comp-scalar.so"
else bad "example modules not found as $so_sym4, $so_scalar"; fi
exported=$(nm -D --defined-only "$so_sym4" 2>/dev/null | awk '{print $3}' | grep -v '^_' | tr '\n' ' ')
if [ "$exported" = "hc_plugin_entry " ]; then ok "the plugin exports only hc_plugin_entry"
else bad "the plugin exports: $exported"; fi

# ---------------------------------------------------------------- pkg-config, by hand
echo "== compile comp_scalar by hand with pkg-config flags"
export PKG_CONFIG_PATH=$P/lib/pkgconfig
if cflags=$(pkg-config --cflags hcinfer) && libs=$(pkg-config --libs hcinfer); then
    ok "pkg-config hcinfer: $cflags $libs"
    mkdir -p "$tmp/pc"
    check "cc -shared \$(pkg-config --cflags --libs hcinfer) scalar.c" \
        cc -std=c11 -O2 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden $cflags \
        "$tmp/src/comp_scalar/scalar.c" -o "$tmp/pc/hc-comp-scalar.so" $libs
    check "cc test_scalar.c scalar.c \$(pkg-config ...) and run it" \
        bash -c "cc -std=c11 -O2 $cflags '$tmp/src/comp_scalar/test_scalar.c' '$tmp/src/comp_scalar/scalar.c' \
                 -o '$tmp/pc/test_scalar' $libs -Wl,-rpath,'$(pkg-config --variable=libdir hcinfer)' && '$tmp/pc/test_scalar'"
    plugindir=$(pkg-config --variable=plugindir hcinfer)
    if [ "$(realpath "$plugindir" 2>/dev/null)" = "$P/lib/hcinfer/plugins" ]; then ok "pkg-config plugindir is P/lib/hcinfer/plugins"
    else bad "pkg-config plugindir is '$plugindir'"; fi
    abi_pc=$(pkg-config --variable=abi_version hcinfer)
    check "the pkg-config-built plugin loads" env HC_PLUGIN_PATH="$tmp/pc" "$P/bin/hcinfer" plugins
    expect "hcinfer plugins lists scalar from the pkg-config build" "$tmp/last.log" "$tmp/pc/hc-comp-scalar.so"
else
    bad "pkg-config --cflags --libs hcinfer (PKG_CONFIG_PATH=$PKG_CONFIG_PATH)"
    abi_pc=""
fi

# ---------------------------------------------------------------- the examples inside hcinfer
echo "== hcinfer with HC_PLUGIN_PATH at the example builds"
export HC_PLUGIN_PATH=$tmp/b/quant_sym4:$tmp/b/comp_scalar
check "hcinfer plugins" "$P/bin/hcinfer" plugins
cp "$tmp/last.log" "$tmp/plugins.txt"
if grep -Eq "^quant +sym4 +1\.0\.0 .*$so_sym4\$" "$tmp/plugins.txt"; then ok "hcinfer plugins lists quant sym4"; else bad "quant sym4 not listed" "$tmp/plugins.txt"; fi
if grep -Eq "^comp +scalar +1\.0\.0 .*$so_scalar\$" "$tmp/plugins.txt"; then ok "hcinfer plugins lists comp scalar"; else bad "comp scalar not listed" "$tmp/plugins.txt"; fi
if grep -q "refused" "$tmp/plugins.txt"; then bad "a plugin was refused" "$tmp/plugins.txt"; else ok "nothing refused"; fi

model=$root/../shared/models/stories260K/stories260K.bin
if [ -f "$model" ]; then
    # f16 branches: the example kernel applies f16 and f32 (compress's default is q8_0)
    check "hcinfer compress --quant sym4:group=32 --rank 4 --branch-dtype f16" \
        "$P/bin/hcinfer" compress -m "$model" -o "$tmp/sym4.gguf" --quant sym4:group=32 --rank 4 --branch-dtype f16
    expect "the backbone is stored as sym4:group=32" "$tmp/last.log" "as sym4:group=32"
    if "$P/bin/hcinfer" run -m "$tmp/sym4.gguf" --temp 0 -n 32 --comp scalar >"$tmp/run.txt" 2>"$tmp/run.err"; then
        letters=$(tr -cd 'A-Za-z' <"$tmp/run.txt" | wc -c)
        if [ "$letters" -ge 20 ]; then ok "hcinfer run --comp scalar: $(head -c 80 "$tmp/run.txt" | tr '\n' ' ')"
        else bad "hcinfer run --comp scalar printed no text" "$tmp/run.txt"; fi
    else
        bad "hcinfer run -m sym4.gguf --comp scalar (exit $?)" "$tmp/run.err"
    fi
    # the plugin's kernel (matmul_rows) against its reference (--f32 converts with dequantize_rows)
    text=$root/../shared/eval/wiki.test.tokens
    if [ -f "$text" ]; then
        ppl() { "$P/bin/hcinfer" eval -m "$tmp/sym4.gguf" --ppl "$text" --limit 4 --ctx 128 --no-progress --json "$@" 2>>"$tmp/eval.err" |
                sed -n 's/.*"ppl": \([0-9.eE+-]*\).*/\1/p'; }
        p_kernel=$(ppl --comp scalar)
        p_ref=$(ppl --comp scalar --f32)
        if [ -n "$p_kernel" ] && [ -n "$p_ref" ] && awk -v a="$p_kernel" -v b="$p_ref" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-3 * b) }'; then
            ok "perplexity with the sym4 kernel $p_kernel = with its reference (--f32) $p_ref"
        else
            bad "perplexity with the sym4 kernel '$p_kernel' differs from its reference (--f32) '$p_ref'" "$tmp/eval.err"
        fi
    else
        echo "SKIP kernel-against-reference perplexity: $text is absent"
    fi
    if HC_PLUGIN_PATH= "$P/bin/hcinfer" run -m "$tmp/sym4.gguf" --temp 0 -n 4 >/dev/null 2>"$tmp/run.err"; then
        bad "a sym4 model ran without the sym4 plugin"
    else
        expect "without the plugin, run fails naming sym4" "$tmp/run.err" "no quant plugin named 'sym4'"
    fi
    # compress's default branches (q8_0) are refused by the example kernel, naming the branch
    check "hcinfer compress --quant sym4:group=32 --rank 4 (q8_0 branches)" \
        "$P/bin/hcinfer" compress -m "$model" -o "$tmp/sym4-q8.gguf" --quant sym4:group=32 --rank 4
    if "$P/bin/hcinfer" run -m "$tmp/sym4-q8.gguf" --temp 0 -n 4 --comp scalar >/dev/null 2>"$tmp/run.err"; then
        bad "the scalar kernel ran q8_0 branches"
    else
        expect "the scalar kernel refuses q8_0 branches, naming one" "$tmp/run.err" "cannot apply q8_0 branches (blk."
    fi
else
    echo "SKIP compress/run with sym4 and scalar: $model is absent (scripts/fetch_model.sh)"
fi

# ---------------------------------------------------------------- refusals
echo "== refusals: another ABI version, the same plugin twice"
abi=$(sed -n 's/^#define HC_ABI_VERSION \([0-9][0-9]*\).*/\1/p' "$P/include/hc/hc_plugin.h")
if [ -n "$abi" ] && [ "$abi" = "$abi_pc" ]; then ok "ABI version $abi (header and pkg-config agree)"
else bad "ABI version: header '$abi', pkg-config '$abi_pc'"; abi=${abi:-1}; fi
build_forced_abi() {   # build_forced_abi BUILD_DIR VERSION: the sym4 plugin declaring another ABI
    configure_example quant_sym4 "$1" "-DSYM4_FORCE_ABI=$2" && cmake --build "$1" --target hc-quant-sym4
}
for other in $((abi - 1)) $((abi + 1)); do
    dir=$tmp/b/abi$other
    check "build sym4 with -DSYM4_FORCE_ABI=$other" build_forced_abi "$dir" "$other"
    check "hcinfer plugins with the ABI $other plugin" env HC_PLUGIN_PATH="$dir" "$P/bin/hcinfer" plugins
    expect "ABI $other refused, naming the file" "$tmp/last.log" "plugin $dir/hc-quant-sym4.so refused"
    expect "ABI $other refused with the versions" "$tmp/last.log" "ABI version $other, but this hcinfer has ABI version $abi"
    if grep -Eq '^quant +sym4 ' "$tmp/last.log"; then bad "the ABI $other plugin was loaded" "$tmp/last.log"; else ok "the ABI $other plugin is not loaded"; fi
done
dup=$tmp/dup
mkdir -p "$dup"
cp "$so_sym4" "$dup/a-sym4.so" && cp "$so_sym4" "$dup/b-sym4.so"
check "hcinfer plugins with one plugin under two names" env HC_PLUGIN_PATH="$dup" "$P/bin/hcinfer" plugins
cp "$tmp/last.log" "$tmp/dup.txt"
if grep -Eq "^quant +sym4 .*$dup/a-sym4.so\$" "$tmp/dup.txt"; then ok "the first copy is loaded"; else bad "the first copy is not loaded" "$tmp/dup.txt"; fi
if grep -F "refused" "$tmp/dup.txt" | grep -F "$dup/b-sym4.so" | grep -qF "$dup/a-sym4.so"; then
    ok "the second copy is refused, naming both files"
else
    bad "no refusal naming both $dup/b-sym4.so and $dup/a-sym4.so" "$tmp/dup.txt"
fi

echo "test_sdk: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
