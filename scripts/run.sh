#!/usr/bin/env bash
# run.sh builds and starts sam-ml-backend on port ${PORT:-9090}. With no
# SAM_ENCODER_PATH/SAM_DECODER_PATH it runs the bundled demo stand-in models,
# so Label Studio can be connected and the whole path tried at once.
set -euo pipefail
cd "$(dirname "$0")/.."

ONNXRUNTIME_LIB="${ONNXRUNTIME_LIB:-$(scripts/fetch-onnxruntime.sh)}"
export ONNXRUNTIME_LIB
mkdir -p bin
echo "run.sh: building bin/sam-ml-backend (the first build takes a minute)" >&2
go build -trimpath -ldflags "-X main.version=$(git describe --always --dirty 2>/dev/null || echo dev)" -o bin/sam-ml-backend ./cmd/sam-ml-backend
exec bin/sam-ml-backend
