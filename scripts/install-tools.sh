#!/usr/bin/env bash
# Installs the pinned Go-built tools the project needs into ./.tools/bin.
# Idempotent: a tool already present at the pinned version is reused.
# Usage: scripts/install-tools.sh [opa] [helm] [ghz] [opa-envoy-plugin] [opa-peer] [go-mcp-server] [redis]   (no args: opa)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.tools/bin"
mkdir -p "$bin"

OPA_MOD="github.com/open-policy-agent/opa@v1.22.2"
HELM_MOD="helm.sh/helm/v3/cmd/helm@v3.19.0"
GHZ_MOD="github.com/bojand/ghz/cmd/ghz@v0.121.0"
OEP_MOD="github.com/open-policy-agent/opa-envoy-plugin/cmd/opa-envoy-plugin@v1.19.1-envoy"

need_go() {
  if ! command -v go >/dev/null 2>&1; then
    echo "install-tools: Go is not installed. Install Go >= 1.24 (https://go.dev/dl/) and re-run," >&2
    echo "  or put these on PATH yourself: opa v1.22.2, helm v3, ghz, opa-envoy-plugin v1.19.1-envoy." >&2
    exit 1
  fi
}

# install NAME MODULE@VERSION: go install into .tools/bin, skipped when the stamp matches.
install() {
  local name="$1" mod="$2" stamp="$bin/.$1.version"
  if [[ -x "$bin/$name" && -f "$stamp" && "$(cat "$stamp")" == "$mod" ]]; then
    return 0
  fi
  need_go
  echo "install-tools: go install $mod" >&2
  GOBIN="$bin" GOFLAGS="-mod=mod" go install "$mod"
  echo "$mod" > "$stamp"
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$@"; else shasum -a 256 "$@"; fi
}

# The benchmark's stand-in for opa-envoy-plugin (bench/opa-peer), built from this repo.
# The stamp is a hash of its sources and go.sum, so any edit rebuilds it.
install_opa_peer() {
  local dir="$root/bench/opa-peer" stamp="$bin/.opa-peer.version" sum
  sum="$(cd "$dir" && sha256_of $(ls *.go go.mod go.sum | grep -v '_test\.go$' | LC_ALL=C sort) | sha256_of | cut -d' ' -f1)"
  if [[ -x "$bin/opa-peer" && -f "$stamp" && "$(cat "$stamp")" == "$sum" ]]; then
    return 0
  fi
  need_go
  echo "install-tools: go build bench/opa-peer" >&2
  (cd "$dir" && GOFLAGS="-mod=mod -buildvcs=false" go build -o "$bin/opa-peer" .)
  echo "$sum" > "$stamp"
}

# The end-to-end tests' Go MCP server (test/e2e/go-mcp-server, mcp-go from the Go module
# proxy), built from this repo; stamped like opa-peer.
install_go_mcp_server() {
  local dir="$root/test/e2e/go-mcp-server" stamp="$bin/.go-mcp-server.version" sum
  sum="$(cd "$dir" && sha256_of $(ls *.go go.mod go.sum | grep -v '_test\.go$' | LC_ALL=C sort) | sha256_of | cut -d' ' -f1)"
  if [[ -x "$bin/go-mcp-server" && -f "$stamp" && "$(cat "$stamp")" == "$sum" ]]; then
    return 0
  fi
  need_go
  echo "install-tools: go build test/e2e/go-mcp-server" >&2
  (cd "$dir" && GOFLAGS="-mod=mod -buildvcs=false" go build -o "$bin/go-mcp-server.tmp.$$" . && mv -f "$bin/go-mcp-server.tmp.$$" "$bin/go-mcp-server")
  echo "$sum" > "$stamp"
}

install_redis() {
  if command -v redis-server >/dev/null 2>&1; then return 0; fi
  if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    echo "install-tools: apt-get install redis-server" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "install-tools: redis-server is missing; install it (e.g. 'apt-get install redis-server')" >&2
    exit 1
  fi
}

tools=("$@")
[[ ${#tools[@]} -eq 0 ]] && tools=(opa)
for t in "${tools[@]}"; do
  case "$t" in
    opa) install opa "$OPA_MOD" ;;
    helm) install helm "$HELM_MOD" ;;
    ghz) install ghz "$GHZ_MOD" ;;
    opa-envoy-plugin) install opa-envoy-plugin "$OEP_MOD" ;;
    opa-peer) install_opa_peer ;;
    go-mcp-server) install_go_mcp_server ;;
    redis) install_redis ;;
    *) echo "install-tools: unknown tool '$t'" >&2; exit 2 ;;
  esac
done
