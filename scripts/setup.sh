#!/usr/bin/env bash
# Installs whatever is missing to build and test Weft, then builds it. Safe to run again: each step is
# skipped when already done. Needs root on a fresh Debian machine (apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# Debian packages: the toolchain better-sqlite3 and the CNI relay compile with, the kernel tools the
# agent drives, and what the integration tests run (busybox in "containers", iperf3, podman with CNI,
# dnsmasq as an upstream DNS server, Docker Engine as a real CNM client; WireGuard: `wg` and the
# userspace wireguard-go, since these kernels have no WireGuard module; tcpdump to show what the underlay
# carries; Chromium for the web UI's tests and bench:ui, driven by playwright-core from npm: never a
# browser downloaded at run time). bird2: the BGP daemon the agent runs for routed networks (its own
# instance, with its own configuration; the package's system service is not Weft's and is stopped).
# ansible-core: `ansible-inventory` checks what `weft inventory` writes; librsvg2-bin: `rsvg-convert`
# turns `weft bench`'s SVG charts into PNG; libssl-dev: bench:api's C load generator (src/bench/httpload.c).
PKGS=(python3 make g++ gcc libssl-dev ca-certificates procps util-linux iproute2 nftables conntrack iputils-ping
      busybox-static iperf3 podman runc containernetworking-plugins etcd-server dnsmasq-base docker.io
      wireguard-tools wireguard-go tcpdump chromium bird2 ansible-core librsvg2-bin)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then missing+=(nodejs npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian starts bird2's own service (a BGP daemon in the root namespace with the package's
  # configuration) where systemd runs: Weft runs its own bird per agent and needs none of it.
  if [[ " ${missing[*]} " == *" bird2 "* ]] && command -v systemctl >/dev/null 2>&1 && systemctl is-enabled bird >/dev/null 2>&1; then
    say "disabling the bird2 package's own service (Weft's agent runs its own bird)"
    systemctl disable --now bird >/dev/null 2>&1 || true
  fi
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  say "Node.js $(node --version) is too old: Weft needs Node 20 or newer"
  exit 1
fi

# npm dependencies: reinstall when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (better-sqlite3 compiles from source: about a minute)"
  npm ci --no-audit --no-fund --loglevel=error
fi

say "building"
npm run --silent build
say "ready: npx weft --help"
