#!/usr/bin/env bash
# ctest's integration.test_ktls_vm: the kernel-TLS tests on a kernel that
# has kernel TLS. Boots the VM of tests/ktls_vm/run and, inside it, runs the
# kTLS unit tests (keys installed into real kernel sockets, records checked
# against BoringSSL) and the test_ktls integration module.
# Usage: ctest_ktls.sh SOURCE_DIR BUILD_DIR   (exit 77 = skipped)
set -euo pipefail
src=$1
build=$2
if ! command -v qemu-system-x86_64 >/dev/null || [ ! -x /bin/busybox ]; then
  echo "SKIP: qemu-system-x86 / busybox-static not installed" \
    "(scripts/install-deps.sh installs them)"
  exit 77
fi
cd "$src/tests/integration"
export PYTHONDONTWRITEBYTECODE=1
export POPGATE_BIN="$build/server/popgate" SYNTH_BIN="$build/testbed/pop3-synth"
"$src/tests/ktls_vm/run" --ro "$src" --ro "$build" -- sh -c "
  '$build/tests/tls/popgate_tls_test' --gtest_filter='Ktls*:*Tls12Test*' &&
  python3 run_skippable.py test_ktls"
