# Makefile for sam-ml-backend. `make` lists the targets.
.DEFAULT_GOAL := help
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

run: ## Build and start the backend (demo models unless SAM_*_PATH are set)
	./scripts/run.sh

test: ## Run every test, installing what they need
	./scripts/test.sh

build: ## Build bin/sam-ml-backend
	go build -trimpath -ldflags "-X main.version=$(VERSION)" -o bin/sam-ml-backend ./cmd/sam-ml-backend

onnxruntime: ## Fetch the ONNX Runtime library into the cache
	./scripts/fetch-onnxruntime.sh

bench: ## Run the benchmarks
	ONNXRUNTIME_LIB=$$(./scripts/fetch-onnxruntime.sh) go test -run '^$$' -bench . -benchmem ./internal/...

fuzz: ## Fuzz each target for 60 s
	./scripts/fuzz.sh 60s

golden: ## Regenerate the stand-in models
	go run ./cmd/gen-standins

lint: ## gofmt and go vet
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	go vet ./...

.PHONY: help run test build onnxruntime bench fuzz golden lint
