#!/usr/bin/env bash
# test.sh runs every test of sam-ml-backend, after installing what the tests
# need: the ONNX Runtime library (scripts/fetch-onnxruntime.sh, cached) and
# the npm package @thi.ng/rle-pack, the brush decoder Label Studio's editor
# runs. With both installed, no test may skip for want of them.
#
# Usage: scripts/test.sh [go test flags...]     e.g. scripts/test.sh -run RLE ./internal/rle/
set -euo pipefail
cd "$(dirname "$0")/.."

ONNXRUNTIME_LIB="${ONNXRUNTIME_LIB:-$(scripts/fetch-onnxruntime.sh)}"
export ONNXRUNTIME_LIB

rlepack=internal/rle/testdata/rlepack
if [ ! -d "$rlepack/node_modules/@thi.ng/rle-pack" ] || [ "$rlepack/package-lock.json" -nt "$rlepack/node_modules" ]; then
	npm ci --silent --no-audit --no-fund --prefix "$rlepack" >&2
fi
export SAM_REQUIRE_ORT=1 SAM_REQUIRE_NODE=1

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
go vet ./...
CGO_ENABLED=0 go build ./...   # everything but ONNX Runtime builds without cgo

if [ $# -eq 0 ]; then
	set -- ./...
fi
go test -race -count=1 "$@"
