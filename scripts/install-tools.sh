#!/usr/bin/env bash
# Installs the pinned Go-built tools the project needs into ./.tools/bin.
# Idempotent: a tool already present at the pinned version is reused.
# Usage: scripts/install-tools.sh [opa] [helm] [ghz] [opa-envoy-plugin] [opa-peer] [envoy-validate] [promtool] [go-mcp-server] [redis]
#        (no args: opa)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.tools/bin"
mkdir -p "$bin"

OPA_MOD="github.com/open-policy-agent/opa@v1.22.2"
HELM_MOD="helm.sh/helm/v3/cmd/helm@v3.19.0"
GHZ_MOD="github.com/bojand/ghz/cmd/ghz@v0.121.0"
OEP_MOD="github.com/open-policy-agent/opa-envoy-plugin/cmd/opa-envoy-plugin@v1.19.1-envoy"
# Only where Debian's prometheus package cannot be fetched: this build takes 15+ minutes on 2 cores.
PROMTOOL_MOD="github.com/prometheus/prometheus/cmd/promtool@v0.316.0"

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

# build_local NAME DIR: go build a program of this repository (its go.mod and go.sum pin
# every dependency) into .tools/bin/NAME. The stamp is a hash of its sources, go.mod and
# go.sum, so any edit rebuilds it; the binary is swapped in by rename, so a test running
# the old one never sees half a file.
build_local() {
  local name="$1" dir="$root/$2" stamp="$bin/.$1.version" sum
  sum="$(cd "$dir" && sha256_of $(ls *.go go.mod go.sum | grep -v '_test\.go$' | LC_ALL=C sort) | sha256_of | cut -d' ' -f1)"
  if [[ -x "$bin/$name" && -f "$stamp" && "$(cat "$stamp")" == "$sum" ]]; then
    return 0
  fi
  need_go
  echo "install-tools: go build $2" >&2
  (cd "$dir" && GOFLAGS="-mod=mod -buildvcs=false" go build -o "$bin/.$name.tmp" .)
  mv -f "$bin/.$name.tmp" "$bin/$name"
  echo "$sum" > "$stamp"
}

# promtool (`promtool check rules`, `promtool test rules`): taken out of Debian's prometheus
# package with `apt-get download` + `dpkg-deb -x` — seconds, no root once the package lists
# exist, and no Prometheus server installed or started. Without apt, built with go install.
install_promtool() {
  local stamp="$bin/.promtool.version"
  if [[ -x "$bin/promtool" && -f "$stamp" ]] && { [[ "$(cat "$stamp")" == debian:* ]] || [[ "$(cat "$stamp")" == "$PROMTOOL_MOD" ]]; }; then
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then
    local tmp log
    tmp="$(mktemp -d)"
    chmod 755 "$tmp" # apt's _apt user downloads into it
    if ! log="$(cd "$tmp" && apt-get download -qq prometheus 2>&1)" && [[ "$(id -u)" == 0 ]]; then
      echo "install-tools: apt-get update (the package lists are missing)" >&2
      apt-get update -qq >/dev/null
      log="$(cd "$tmp" && apt-get download -qq prometheus 2>&1)" || true
    fi
    local deb
    deb="$(ls "$tmp"/prometheus_*.deb 2>/dev/null | head -1 || true)"
    if [[ -n "$deb" ]]; then
      echo "install-tools: promtool from Debian's prometheus $(dpkg-deb -f "$deb" Version)" >&2
      dpkg-deb -x "$deb" "$tmp/x"
      cp "$tmp/x/usr/bin/promtool" "$bin/.promtool.tmp" && chmod 0755 "$bin/.promtool.tmp"
      mv -f "$bin/.promtool.tmp" "$bin/promtool"
      echo "debian:prometheus=$(dpkg-deb -f "$deb" Version)" > "$stamp"
      rm -rf "$tmp"
      return 0
    fi
    rm -rf "$tmp"
    echo "install-tools: apt-get cannot fetch Debian's prometheus package:" >&2
    echo "$log" | sed 's/^/  /' >&2
  fi
  echo "install-tools: building promtool with go install instead (15+ minutes on 2 cores)" >&2
  install promtool "$PROMTOOL_MOD"
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
    opa-peer) build_local opa-peer bench/opa-peer ;;
    envoy-validate) build_local envoy-validate test/envoy-validate ;;
    promtool) install_promtool ;;
    go-mcp-server) build_local go-mcp-server test/e2e/go-mcp-server ;;
    redis) install_redis ;;
    *) echo "install-tools: unknown tool '$t'" >&2; exit 2 ;;
  esac
done
