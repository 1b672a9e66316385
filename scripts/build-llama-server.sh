#!/usr/bin/env bash
# Build llama.cpp's llama-server from the llama-cpp-python sdist, cached by version.
#
# Prints the path of the built binary on stdout. The cache lives in
# ${ITE_CACHE_DIR:-$HOME/.cache/inference-throughput-exporter}/llama.cpp-<version>/ and holds the
# binary and the vocab-only GGUF that the tests take their tokenizer from. A second run with the same
# version does nothing but print the path. While a build runs, "$cache/.building" holds its PID, so
# tests started meanwhile (CI starts the build in the background) wait for it instead of failing.
set -euo pipefail

version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
cache="${ITE_CACHE_DIR:-$HOME/.cache/inference-throughput-exporter}/llama.cpp-${version}"
binary="$cache/llama-server"
vocab="$cache/ggml-vocab-llama-spm.gguf"
python="${PYTHON:-python3}"

if [[ -x "$binary" && -f "$vocab" ]]; then
  echo "$binary"
  exit 0
fi

work="$(mktemp -d)"
mkdir -p "$cache"
echo $$ > "$cache/.building"
trap 'rm -rf "$work" "$cache/.building"' EXIT
start=$(date +%s)
"$python" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==${version}" -d "$work" >&2
tar -xzf "$work"/llama_cpp_python-"${version}".tar.gz -C "$work"
src="$work/llama_cpp_python-${version}/vendor/llama.cpp"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$work/build" --target llama-server -j "$(nproc)" >&2
cp "$src/models/ggml-vocab-llama-spm.gguf" "$vocab.tmp" && mv "$vocab.tmp" "$vocab"
cp "$work/build/bin/llama-server" "$binary.tmp" && mv "$binary.tmp" "$binary"
echo "built llama-server ${version} in $(( $(date +%s) - start ))s" >&2
echo "$binary"
