#!/usr/bin/env bash
# Installs the pinned Go-built tools the project needs into ./.tools/bin.
# Idempotent: a tool already present at the pinned version is reused.
# Usage: scripts/install-tools.sh [opa] [helm] [ghz] [opa-envoy-plugin] [redis]   (no args: opa)
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
    redis) install_redis ;;
    *) echo "install-tools: unknown tool '$t'" >&2; exit 2 ;;
  esac
done
