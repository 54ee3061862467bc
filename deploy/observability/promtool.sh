#!/usr/bin/env bash
# Builds promtool (Prometheus's rule checker) from the Go module proxy into
# bin/promtool, in a scratch module so the project's go.mod stays free of
# Prometheus's server dependencies. Run as `bash deploy/observability/promtool.sh`
# (make promtool); does nothing when bin/promtool is already this version.
set -euo pipefail
cd "$(dirname "$0")/../.."
version="${PROMETHEUS_VERSION:-v0.316.0}"
out="$PWD/bin/promtool"
if [ -x "$out" ] && [ -f "$out.version" ] && [ "$(cat "$out.version")" = "$version" ]; then
  exit 0
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p bin
cd "$scratch"
go mod init promtool-build >/dev/null 2>&1
GOFLAGS=-mod=mod go get "github.com/prometheus/prometheus/cmd/promtool@$version" >/dev/null
GOFLAGS=-mod=mod go build -o "$out" github.com/prometheus/prometheus/cmd/promtool
echo "$version" >"$out.version"
"$out" --version | head -1
