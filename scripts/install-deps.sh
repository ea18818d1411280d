#!/usr/bin/env bash
# Installs every Debian 12 package popgate needs to build, test and demo.
# Idempotent; run as root. Used by README.md's commands and by .ci/run.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config
  # Rebuilds (the three presets of a CI run, a second clone) reuse what
  # was compiled before (CMakeLists.txt: POPGATE_CCACHE).
  ccache
  liburing-dev android-libboringssl-dev libabsl-dev libtomlplusplus-dev
  libcrypt-dev libargon2-dev libsodium-dev libgtest-dev libgmock-dev libbenchmark-dev
  # Test peers: real clients and a real Dovecot backend.
  curl python3 fetchmail dovecot-pop3d dovecot-core whois openssl
  # Issue 10: Redis for the shared limit store (hiredis, and a real
  # redis-server the tests start), HAProxy in front (PROXY protocol tests).
  libhiredis-dev redis-server haproxy
  # Issue 11: the admin API's tests run promtool check metrics and a real
  # Prometheus server scraping popgate (a few MB).
  prometheus
  # Issue 11, running as a service: setpriv (tests/integration/test_service
  # starts popgate unprivileged with an ambient CAP_NET_BIND_SERVICE) and
  # systemd-analyze (test_packaging verifies the unit).
  util-linux systemd
  # tests/fuzz (the fuzz preset, scripts/fuzz.sh): clang with libFuzzer and
  # the sanitizer runtimes.
  clang libclang-rt-14-dev llvm
  # tests/ktls_vm: a VM whose kernel has kernel TLS (this host's has none).
  qemu-system-x86 busybox-static kmod
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Dovecot's package starts a system-wide service listening on 110/143/993/995;
# our tests start their own instance, so stop the packaged one if it runs.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet dovecot 2>/dev/null; then
  systemctl stop dovecot || true
fi
