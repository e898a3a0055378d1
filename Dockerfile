# syntax=docker/dockerfile:1
#
# The image of sam-ml-backend: one binary and the ONNX Runtime library on
# distroless, running as a non-root user, and fit for a read-only root
# filesystem: the backend writes no file. Give it a small tmpfs at /tmp all
# the same, for SQLite's temporary files and the empty debug log ONNX
# Runtime's bundled telemetry library opens there. SAM models are not
# inside: mount them, e.g. at /models, and set SAM_ENCODER_PATH and
# SAM_DECODER_PATH. Without them the bundled demo stand-ins run.
#
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t sam-ml-backend .
#
# The image is linux/amd64 only: the pinned ONNX Runtime library is the
# Linux x64 build. internal/deploytest checks this file.

# onnxruntime fetches libonnxruntime.so.1 with the project's own script, so
# the image ships the version and sha256 pinned there and nowhere else.
FROM node:22-bookworm-slim AS onnxruntime
ARG TARGETARCH
RUN if [ -n "$TARGETARCH" ] && [ "$TARGETARCH" != amd64 ]; then \
		echo "sam-ml-backend: the pinned ONNX Runtime library is linux/amd64 only; build with --platform linux/amd64" >&2; \
		exit 1; \
	fi
COPY scripts/fetch-onnxruntime.sh /usr/local/bin/fetch-onnxruntime.sh
RUN SAM_CACHE_DIR=/ort bash /usr/local/bin/fetch-onnxruntime.sh

# build compiles the backend with cgo, which internal/onnxrt needs to load
# ONNX Runtime (github.com/yalue/onnxruntime_go dlopens it), so the binary
# links against glibc. Bookworm's glibc is the runtime image's
# (distroless cc-debian12), so the binary asks for no newer symbols. The
# cache mounts keep modules and compiled packages between builds; go build
# downloads only the modules the binary needs, not the tests'.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
COPY cmd ./cmd
COPY internal ./internal
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
	--mount=type=cache,target=/root/.cache/go-build \
	CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
		-o /out/sam-ml-backend ./cmd/sam-ml-backend

# The runtime image has glibc, libstdc++ and libgcc_s, which the ONNX
# Runtime library needs, and nothing else: no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=onnxruntime /ort/onnxruntime-1.30.0/libonnxruntime.so.1 /opt/onnxruntime/libonnxruntime.so.1
COPY --from=build /out/sam-ml-backend /usr/local/bin/sam-ml-backend
ENV ONNXRUNTIME_LIB=/opt/onnxruntime/libonnxruntime.so.1 \
	PORT=9090
EXPOSE 9090
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sam-ml-backend"]
