#!/usr/bin/env bash
# fetch-onnxruntime.sh downloads the ONNX Runtime shared library that
# sam-ml-backend runs SAM with, checks its sha256, and prints its path.
#
# The library is libonnxruntime.so.1 1.30.0 for Linux x64, taken from the npm
# package onnxruntime-node@1.30.0 (bin/napi-v6/linux/x64/). It is cached under
# ${SAM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sam-ml-backend}, so a second
# run (and CI on the same machine) does not download the 113 MB package again.
#
# Usage: scripts/fetch-onnxruntime.sh        # prints the library path on stdout
set -euo pipefail

version=1.30.0
want_sha256=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
cache="${SAM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sam-ml-backend}/onnxruntime-$version"
lib="$cache/libonnxruntime.so.1"

sum() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$lib" ] && [ "$(sum "$lib")" = "$want_sha256" ]; then
	echo "$lib"
	exit 0
fi

command -v npm >/dev/null || { echo "fetch-onnxruntime: npm is needed to fetch onnxruntime-node@$version" >&2; exit 1; }

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "fetch-onnxruntime: downloading onnxruntime-node@$version (about 113 MB, once)" >&2
(cd "$tmp" && npm pack --silent "onnxruntime-node@$version" >/dev/null)
tar -xzf "$tmp"/onnxruntime-node-"$version".tgz -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1

got=$(sum "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1")
if [ "$got" != "$want_sha256" ]; then
	echo "fetch-onnxruntime: sha256 mismatch: got $got, want $want_sha256" >&2
	exit 1
fi
mv "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$lib"
echo "$lib"
