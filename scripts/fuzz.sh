#!/usr/bin/env bash
# fuzz.sh runs every fuzz target of the module for the given time each
# (default 60s). New crashers land in the package's testdata/fuzz and then
# run as regression tests with every `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-60s}
for pkg in $(go list ./internal/...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func \(Fuzz[A-Za-z0-9_]*\)' "$dir"/*_test.go 2>/dev/null | sed 's/func //'); do
		echo "== $pkg $target ($time)"
		go test -run '^$' -fuzz "^$target\$" -fuzztime "$time" "$pkg"
	done
done
