#!/usr/bin/env bash
# Installs the pinned Go-built tools the project needs into ./.tools/bin.
# Idempotent: a tool already present at the pinned version is reused.
# Usage: scripts/install-tools.sh [node] [node-if-old] [opa] [helm] [ghz] [actionlint] [opa-envoy-plugin] [h2load] [envoy-validate] [compose] [promtool] [prometheus] [go-mcp-server] [go-readers] [grpc-go-client] [loadgen] [sts] [h2spec] [redis] [chromium] [postgres]
#        (no args: opa)
#
# node installs the pinned Node.js LTS into ./.tools/node (from the npm registry's
# node-linux-<arch> package); node-if-old does so only when the node on PATH is older than
# the supported baseline. scripts/with-node runs a command with ./.tools/node/bin first on PATH.
#
# opa-envoy-plugin is built from its source tarball, because the Go module proxy refuses
# `go install` of the module (403 for every version). The tarball is looked for in
# $MCP_AUTHZ_PEERS_DIR, else in ../shared/peers/ beside the repository's folder.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.tools/bin"
mkdir -p "$bin"

OPA_MOD="github.com/open-policy-agent/opa@v1.22.2"
# The Node.js LTS CI runs and the image uses; the supported baseline is NODE_MIN_MAJOR.
NODE_VERSION="24.22.3"
NODE_MIN_MAJOR=22
HELM_MOD="helm.sh/helm/v3/cmd/helm@v3.19.0"
GHZ_MOD="github.com/bojand/ghz/cmd/ghz@v0.121.0"
# The GitHub Actions workflow linter the tests run on .github/workflows (go.sum pins its bytes).
ACTIONLINT_MOD="github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"
# opa-envoy-plugin at commit 07a1fd15b3f5 (after v1.19.1-envoy: OPA v1.19.1); the hash pins the tarball.
OEP_COMMIT="07a1fd1"
OEP_TARBALL_SHA256="7876f449132944e493dfb1b230cd81ce73e3c8fb29485abdc38b5ead9e1b469c"
# Only where Debian's prometheus package cannot be fetched: this build takes 15+ minutes on 2 cores.
PROMTOOL_MOD="github.com/prometheus/prometheus/cmd/promtool@v0.316.0"
PROMETHEUS_MOD="github.com/prometheus/prometheus/cmd/prometheus@v0.316.0"

need_go() {
  if ! command -v go >/dev/null 2>&1; then
    echo "install-tools: Go is not installed. Install Go >= 1.24 (https://go.dev/dl/) and re-run," >&2
    echo "  or put these on PATH yourself (used as they are when Go is missing): opa v1.22.2, helm v3, ghz." >&2
    exit 1
  fi
}

# install NAME MODULE@VERSION: go install into .tools/bin, skipped when the stamp matches.
# Without Go, a NAME already on PATH is used as it is (the project finds it there: for opa,
# src/config/paths.mjs falls back to the opa on PATH), with a word when its version differs.
install() {
  local name="$1" mod="$2" stamp="$bin/.$1.version"
  if [[ -x "$bin/$name" && -f "$stamp" && "$(cat "$stamp")" == "$mod" ]]; then
    return 0
  fi
  if ! command -v go >/dev/null 2>&1 && command -v "$name" >/dev/null 2>&1; then
    local found want="${mod##*@}" have
    found="$(command -v "$name")"
    have="$("$name" version 2>/dev/null | head -3 | tr '\n' ' ' || true)"
    if [[ "$have" == *"${want#v}"* ]]; then
      echo "install-tools: Go is not installed; using $name $want from PATH ($found)" >&2
    else
      echo "install-tools: Go is not installed; using $name from PATH ($found), which is not the pinned $want: ${have:-no version reported}" >&2
    fi
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
# every dependency) into .build/bin/NAME: per checkout, unlike .tools (which checkouts may
# share), since each checkout's sources may differ. The stamp is a hash of its sources,
# go.mod and go.sum, so any edit rebuilds it; the binary is swapped in by rename, so a test
# running the old one never sees half a file.
build_local() {
  local name="$1" dir="$root/$2" out="$root/.build/bin" sum
  local stamp="$out/.$1.version"
  mkdir -p "$out"
  sum="$(cd "$dir" && sha256_of $(ls *.go go.mod go.sum | grep -v '_test\.go$' | LC_ALL=C sort) | sha256_of | cut -d' ' -f1)"
  if [[ -x "$out/$name" && -f "$stamp" && "$(cat "$stamp")" == "$sum" ]]; then
    return 0
  fi
  need_go
  echo "install-tools: go build $2" >&2
  (cd "$dir" && GOFLAGS="-mod=mod -buildvcs=false" go build -o "$out/.$name.tmp" .)
  mv -f "$out/.$name.tmp" "$out/$name"
  echo "$sum" > "$stamp"
}

# build_tool NAME DIR PACKAGE: go build another project's command pinned by a go.mod of this
# repository (a `tool` directive; go.sum pins every module) into .build/bin/NAME. Nothing
# of that project is committed here: the module proxy serves it, go.sum checks it.
build_tool() {
  local name="$1" dir="$root/$2" pkg="$3" out="$root/.build/bin" sum
  local stamp="$out/.$1.version"
  mkdir -p "$out"
  sum="$(cd "$dir" && sha256_of go.mod go.sum | sha256_of | cut -d' ' -f1)"
  if [[ -x "$out/$name" && -f "$stamp" && "$(cat "$stamp")" == "$sum" ]]; then
    return 0
  fi
  need_go
  echo "install-tools: go build $pkg (pinned by $2/go.mod)" >&2
  (cd "$dir" && GOFLAGS="-mod=mod -buildvcs=false" go build -o "$out/.$name.tmp" "$pkg")
  mv -f "$out/.$name.tmp" "$out/$name"
  echo "$sum" > "$stamp"
}

# promtool (`promtool check rules`, `promtool test rules`) and the prometheus server (for
# scripts/render-dashboard.ts only): taken out of Debian's prometheus package with
# `apt-get download` + `dpkg-deb -x` — seconds, no root once the package lists exist, and no
# Prometheus service installed or started. Without apt, built with go install.
install_from_prometheus_deb() {
  local name="$1" mod="$2" stamp="$bin/.$1.version"
  if [[ -x "$bin/$name" && -f "$stamp" ]] && { [[ "$(cat "$stamp")" == debian:* ]] || [[ "$(cat "$stamp")" == "$mod" ]]; }; then
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
      echo "install-tools: $name from Debian's prometheus $(dpkg-deb -f "$deb" Version)" >&2
      dpkg-deb -x "$deb" "$tmp/x"
      cp "$tmp/x/usr/bin/$name" "$bin/.$name.tmp" && chmod 0755 "$bin/.$name.tmp"
      mv -f "$bin/.$name.tmp" "$bin/$name"
      echo "debian:prometheus=$(dpkg-deb -f "$deb" Version)" > "$stamp"
      rm -rf "$tmp"
      return 0
    fi
    rm -rf "$tmp"
    echo "install-tools: apt-get cannot fetch Debian's prometheus package:" >&2
    echo "$log" | sed 's/^/  /' >&2
  fi
  echo "install-tools: building $name with go install instead (15+ minutes on 2 cores)" >&2
  install "$name" "$mod"
}

# opa-envoy-plugin, the benchmark's peer, built from the pinned source tarball. The stamp
# names the commit and the tarball's hash, so a different tarball is never mistaken for it.
install_opa_envoy_plugin() {
  local stamp="$bin/.opa-envoy-plugin.version" want="opa-envoy-plugin@$OEP_COMMIT sha256:$OEP_TARBALL_SHA256"
  if [[ -x "$bin/opa-envoy-plugin" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  local peers="${MCP_AUTHZ_PEERS_DIR:-$root/../shared/peers}"
  local tarball="$peers/opa-envoy-plugin-$OEP_COMMIT.tar.gz"
  if [[ ! -f "$tarball" ]]; then
    echo "install-tools: opa-envoy-plugin source not found at $tarball" >&2
    echo "  The Go module proxy refuses 'go install' of opa-envoy-plugin, so it is built from" >&2
    echo "  opa-envoy-plugin-$OEP_COMMIT.tar.gz. Put that file in ../shared/peers/ beside the" >&2
    echo "  repository's folder, or set MCP_AUTHZ_PEERS_DIR to the folder that holds it." >&2
    exit 1
  fi
  local got
  got="$(sha256_of "$tarball" | cut -d' ' -f1)"
  if [[ "$got" != "$OEP_TARBALL_SHA256" ]]; then
    echo "install-tools: $tarball has sha256 $got, expected $OEP_TARBALL_SHA256 (commit $OEP_COMMIT)" >&2
    exit 1
  fi
  need_go
  local tmp
  tmp="$(mktemp -d)"
  echo "install-tools: go build opa-envoy-plugin $OEP_COMMIT from $tarball (several minutes cold)" >&2
  tar -xzf "$tarball" -C "$tmp"
  if ! (cd "$tmp/opa-envoy-plugin" && GOFLAGS="-buildvcs=false" go build -trimpath -o "$bin/.opa-envoy-plugin.tmp" ./cmd/opa-envoy-plugin); then
    rm -rf "$tmp" "$bin/.opa-envoy-plugin.tmp"
    echo "install-tools: building opa-envoy-plugin failed (Go >= 1.25 and its dependencies from the module proxy are needed)" >&2
    exit 1
  fi
  rm -rf "$tmp"
  mv -f "$bin/.opa-envoy-plugin.tmp" "$bin/opa-envoy-plugin"
  echo "$want" > "$stamp"
}

# Node.js from the npm registry's node-linux-<arch> package (a binary inside a registry
# package): no root, no apt, the same bytes on every machine. npm itself stays the system's;
# with .tools/node/bin first on PATH it runs on this node.
install_node() {
  local stamp="$root/.tools/node/.version" arch
  if [[ -x "$root/.tools/node/bin/node" && -f "$stamp" && "$(cat "$stamp")" == "$NODE_VERSION" ]]; then
    return 0
  fi
  case "$(uname -m)" in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "install-tools: no Node.js package for $(uname -m); install Node.js $NODE_VERSION yourself" >&2; exit 1 ;;
  esac
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-tools: npm is needed to fetch Node.js $NODE_VERSION; install Node.js >= $NODE_MIN_MAJOR instead" >&2
    exit 1
  fi
  local tmp
  tmp="$(mktemp -d)"
  echo "install-tools: Node.js $NODE_VERSION (npm package node-linux-$arch)" >&2
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$NODE_VERSION" >/dev/null)
  tar -xzf "$tmp"/node-linux-"$arch"-*.tgz -C "$tmp"
  rm -rf "$root/.tools/node.tmp"
  mkdir -p "$root/.tools/node.tmp/bin"
  mv "$tmp/package/bin/node" "$root/.tools/node.tmp/bin/node"
  rm -rf "$tmp" "$root/.tools/node"
  mv "$root/.tools/node.tmp" "$root/.tools/node"
  echo "$NODE_VERSION" > "$stamp"
}

# node-if-old: the pinned Node.js only where the node on PATH is below the supported major.
install_node_if_old() {
  local major
  major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  if [[ "$major" -lt "$NODE_MIN_MAJOR" ]]; then
    echo "install-tools: node ${major:-none} on PATH is older than $NODE_MIN_MAJOR (end of life); fetching Node.js $NODE_VERSION into .tools/node" >&2
    install_node
  fi
}

# h2load (nghttp2's HTTP/2 and HTTP/1.1 load generator), from the system's packages.
install_h2load() {
  if command -v h2load >/dev/null 2>&1; then return 0; fi
  if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    echo "install-tools: apt-get install nghttp2-client (h2load)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null
  else
    echo "install-tools: h2load is missing; install it (e.g. 'apt-get install nghttp2-client')" >&2
    exit 1
  fi
}

# Debian's chromium, for scripts/render-dashboard.ts (screenshots through playwright-core) and
# the tests a person would click through (test/helpers/browser.ts). A machine that has Google
# Chrome instead (GitHub's hosted runners) uses that.
install_chromium() {
  if command -v chromium >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1; then return 0; fi
  if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    echo "install-tools: apt-get install chromium" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
  else
    echo "install-tools: chromium is missing; install it (e.g. 'apt-get install chromium')" >&2
    exit 1
  fi
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

# PostgreSQL's server binaries (initdb, postgres) for the tests that start a database of their
# own (test/helpers/postgres.ts): Debian's package puts them in /usr/lib/postgresql/<major>/bin.
install_postgres() {
  if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1; then return 0; fi
  if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    echo "install-tools: apt-get install postgresql" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "install-tools: PostgreSQL's server is missing; install it (e.g. 'apt-get install postgresql')" >&2
    exit 1
  fi
}

tools=("$@")
[[ ${#tools[@]} -eq 0 ]] && tools=(opa)
for t in "${tools[@]}"; do
  case "$t" in
    node) install_node ;;
    node-if-old) install_node_if_old ;;
    opa) install opa "$OPA_MOD" ;;
    helm) install helm "$HELM_MOD" ;;
    ghz) install ghz "$GHZ_MOD" ;;
    actionlint) install actionlint "$ACTIONLINT_MOD" ;;
    opa-envoy-plugin) install_opa_envoy_plugin ;;
    h2load) install_h2load ;;
    envoy-validate) build_local envoy-validate test/envoy-validate ;;
    promtool) install_from_prometheus_deb promtool "$PROMTOOL_MOD" ;;
    prometheus) install_from_prometheus_deb prometheus "$PROMETHEUS_MOD" ;;
    # Docker Compose's own CLI (`docker-compose config` needs no engine): validates examples/compose.
    compose) build_tool docker-compose test/compose-cli github.com/docker/compose/v5/cmd ;;
    go-mcp-server) build_local go-mcp-server test/e2e/go-mcp-server ;;
    go-readers) build_local go-readers test/readers/go ;;
    grpc-go-client) build_local grpc-go-client test/grpc-go-client ;;
    # The benchmark's gRPC Check load generator (a request list sent round-robin: distinct tokens).
    loadgen) build_local loadgen bench/loadgen ;;
    sts) build_local sts test/sts ;;
    # h2spec 2.2.1, the HTTP/2 conformance tester (the module proxy serves no later release).
    h2spec) build_tool h2spec test/h2spec github.com/summerwind/h2spec/cmd/h2spec ;;
    redis) install_redis ;;
    chromium) install_chromium ;;
    postgres) install_postgres ;;
    *) echo "install-tools: unknown tool '$t'" >&2; exit 2 ;;
  esac
done
