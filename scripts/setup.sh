#!/usr/bin/env bash
# Installs and builds everything Isthmus needs, idempotently: apt packages, npm packages, the
# native addon, the BPF objects and the compiled CNI plugin. A run with everything present and
# up to date takes seconds. `--build-only` skips the system packages.
set -euo pipefail
cd "$(dirname "$0")/.."
stamps=.setup-stamps
mkdir -p "$stamps"

say() { printf '[setup] %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: one command per package that must be present.
apt_packages=(etcd-server:etcd etcd-client:etcdctl wireguard-go:wireguard-go wireguard-tools:wg
  clang:clang llvm:llc libbpf-dev:/usr/include/bpf/libbpf.h bpftool:bpftool iproute2:ip
  iputils-ping:ping tcpdump:tcpdump iperf3:iperf3 iptables:iptables ipset:ipset
  libelf-dev:/usr/include/libelf.h zlib1g-dev:/usr/include/zlib.h pkg-config:pkg-config
  gcc-multilib:/usr/include/x86_64-linux-gnu/gnu/stubs-32.h util-linux:nsenter procps:ps)

install_system_packages() {
  local missing=() pkg probe
  for entry in "${apt_packages[@]}"; do
    pkg=${entry%%:*}
    probe=${entry#*:}
    if [[ $probe == /* ]]; then [ -e "$probe" ] || missing+=("$pkg")
    else command -v "$probe" >/dev/null 2>&1 || [ -x "/usr/sbin/$probe" ] || missing+=("$pkg"); fi
  done
  [ ${#missing[@]} -eq 0 ] && return
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A step re-runs only when the hash of its inputs changed or its output is missing.
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }
is_current() { [ "$(cat "$stamps/$1" 2>/dev/null)" = "$2" ]; }
mark_current() { echo "$2" > "$stamps/$1"; }

install_npm_packages() {
  local sum
  sum=$(hash_of package-lock.json)
  is_current npm "$sum" && [ -d node_modules ] && return
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  mark_current npm "$sum"
}

build_native_addon() {
  [ -f agent/native/binding.gyp ] || return 0
  local sum
  sum=$(hash_of agent/native/binding.gyp agent/native/src/*)
  is_current addon "$sum" && [ -f agent/native/build/Release/isthmus_native.node ] && return
  say "building the native addon"
  (cd agent/native && node "$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js" rebuild --silent \
    --nodedir="$(npm config get nodedir)" >/dev/null)
  mark_current addon "$sum"
}

build_bpf_objects() {
  [ -f bpf/Makefile ] || return 0
  make -s -C bpf
}

build_lab_tools() {
  # The lab's pod echo server and prober (C, tiny: hundreds of pods share two cores).
  make -s -C integration/lab/tools
}

build_typescript() {
  # The CNI plugin is started once per pod, so it runs as compiled JavaScript, not through tsx.
  local sum
  sum=$(hash_of tsconfig.json $(git ls-files -co --exclude-standard '*.ts' | grep -v '\.test\.ts$' | sort))
  is_current tsc "$sum" && [ -d dist ] && return
  say "compiling TypeScript"
  npx tsc -p .
  mark_current tsc "$sum"
}

[ "${1:-}" = "--build-only" ] || install_system_packages
install_npm_packages
build_native_addon
build_bpf_objects
build_lab_tools
build_typescript
