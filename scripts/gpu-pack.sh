#!/usr/bin/env bash
# Packs .gpu/ for scripts/gpu-check.sh (docs/PERFORMANCE.md, "On a GPU"): ../shared/gpu/pack.sh (Node 20, the runtime
# npm packages, dist/, the reference fixtures, stories260K-hf), plus what bench:recipe needs there and cannot make
# without the corpus: the SmolLM2-135M-Instruct tokenizer and the 200 DrugBank rows tokenized here (.gpu/recipe-inputs).
# Run from the project root of a main checkout (pack.sh writes .git/info/exclude, which a worktree lacks) after
# `npm ci` (or npx tsc -p tsconfig.json). The device tool then carries `.gpu`; this prints its size (limit 64 MiB).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
shared=${MEDLORA_SHARED:-$root/../shared}
bash "$shared/gpu/pack.sh"
# pack.sh copies every package but typescript / @types: with node-llama-cpp's binaries (~720 MB, a devDependency of
# bench:llamacpp) that is far over the device tool's 64 MiB. Keep the runtime closure alone (npm ls --omit=dev: the
# tokenizers, jinja, yaml, node-addon-api for the addon's build there); none of gpu-check.sh's tests imports the rest.
rm -rf .gpu/node_modules && mkdir -p .gpu/node_modules
# (npm prints paths under the project's node_modules, or under its real path when that is a link)
nm=$(realpath node_modules)
npm ls --omit=dev --all --parseable 2>/dev/null | sed -n -e "s#^$root/node_modules/##p" -e "t" -e "s#^$nm/##p" | while read -r p; do
  case "$p" in typescript | @types/*) continue ;; esac
  [ -e ".gpu/node_modules/$p" ] || { mkdir -p ".gpu/node_modules/$(dirname "$p")" && cp -rL "node_modules/$p" ".gpu/node_modules/$p"; }
done
tok=.gpu/shared/fixtures/hf/SmolLM2-135M-Instruct
mkdir -p "$tok" .gpu/recipe-inputs
for f in tokenizer.json tokenizer_config.json special_tokens_map.json vocab.json merges.txt config.json; do
  [ -f "$shared/fixtures/hf/SmolLM2-135M-Instruct/$f" ] && cp "$shared/fixtures/hf/SmolLM2-135M-Instruct/$f" "$tok/"
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node dist/bench/recipe.js --rows-only --big --dir "$tmp" --no-ref > "$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
cp "$tmp"/ddi-rows-*.jsonl "$tmp"/ddi-prompts-*.jsonl .gpu/recipe-inputs/
[ -d .gpu/node_modules/@huggingface/tokenizers ] || { echo "gpu-pack: the runtime packages were not found (npm ls)"; exit 1; }
echo "gpu-pack: .gpu/ is $(du -sh .gpu | cut -f1); on the device: bash .gpu/on-device.sh 'bash scripts/gpu-check.sh' (carry .gpu)"
