#!/usr/bin/env bash
# Builds the Debian package and checks it the way an operator meets it
# (issue 11): `dpkg-buildpackage -us -uc -b` in a copy of the source tree,
# lintian (any error fails), then the .deb installed into a clean Debian 12
# tree made by mmdebstrap (from Debian's archive, nothing of this host's
# installed packages in it) and checked there: the popgate user, /etc/popgate,
# the unit (enabled, not running: no config yet), man pages, and
# `popgate --check-config` of the shipped example config as the popgate user
# with the files it names; finally popgate starts in that tree on loopback
# and stops on SIGTERM.
#
#   scripts/package-test.sh [--prebuilt BUILDDIR] [SRCDIR]
#                                       (as root; default: this checkout)
# --prebuilt BUILDDIR: package BUILDDIR/server/popgate (a build of the same
# tree) instead of compiling it in dpkg-buildpackage (debian/rules,
# POPGATE_PREBUILT): what scripts/test.sh runs in CI, about 2 minutes.
# PACKAGE_TEST_DEB=FILE.deb checks that package instead of building one.
# The work directory (/tmp/popgate-package.XXXX: logs, the .deb, the tree)
# is kept when a step fails, or with KEEP=1.
# scripts/test.sh (CI) runs it with --prebuilt. Built from source: 21 min on 2 cores
# shared with other builds (load ~24; 19.6 min of it dpkg-buildpackage,
# 1 min mmdebstrap); PACKAGE_TEST_DEB runs skip the build (1.5-6 min).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
prebuilt=""
if [[ "${1:-}" == "--prebuilt" ]]; then
  prebuilt="$(cd "$2" && pwd)"
  [[ -x "$prebuilt/server/popgate" ]] || { echo "package-test: no $prebuilt/server/popgate" >&2; exit 1; }
  shift 2
fi
src="$(cd "${1:-$here}" && pwd)"
start=$SECONDS
step() { printf '== [%4ds] %s\n' $((SECONDS - start)) "$*"; }
fail() { echo "package-test: FAILED: $*" >&2; exit 1; }

need=(dpkg-dev debhelper lintian mmdebstrap fakeroot openssl)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  step "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work="$(mktemp -d /tmp/popgate-package.XXXX)"
root="$work/root"
cleanup() {
  local rc=$?
  if [[ "${KEEP:-0}" == 1 || $rc != 0 ]]; then
    echo "package-test: kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

if [[ -n "${PACKAGE_TEST_DEB:-}" ]]; then
  # A .deb built before (iterating on the checks below): no build.
  deb="$(realpath "$PACKAGE_TEST_DEB")"
  changes="$deb"
  step "using $deb"
else
  # The source as git sees it (tracked and new files, not build trees), so
  # the package is built from exactly what a fresh clone would hold (plus
  # uncommitted edits).
  step "copying $src"
  version="$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)"
  tree="$work/popgate-$version"
  mkdir -p "$tree"
  if git -C "$src" rev-parse --show-toplevel >/dev/null 2>&1; then
    (cd "$src" && git ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do [[ -e "$f" ]] && printf '%s\0' "$f"; done |
      tar --null -cf - -T -) | tar -xf - -C "$tree"
  else  # an unpacked source tree (git archive)
    tar -C "$src" --exclude=./debian/popgate --exclude='./obj-*' -cf - . |
      tar -xf - -C "$tree"
  fi

  missing_bd="$(cd "$tree" && dpkg-checkbuilddeps 2>&1 |
    sed -n 's/.*Unmet build dependencies: //p' | sed 's/([^)]*)//g')" || true
  if [[ -n "$missing_bd" ]]; then
    step "installing build dependencies: $missing_bd"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing_bd >/dev/null
  fi

  step "dpkg-buildpackage -us -uc -b${prebuilt:+ (popgate from $prebuilt)}"
  (cd "$tree" && DEB_BUILD_OPTIONS="parallel=$(nproc)" \
    POPGATE_PREBUILT="$prebuilt" \
    dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) ||
    { tail -40 "$work/build.log"; fail "dpkg-buildpackage (log: $work/build.log)"; }
  deb="$(ls "$work"/popgate_"$version"_*.deb)"
  changes="$(ls "$work"/popgate_"$version"_*.changes)"
  step "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
fi
dpkg-deb -c "$deb" | awk '{print $6, $7, $8}' | sed 's/^\.//'

step "lintian (fails on errors)"
lintian --fail-on error --info "$changes" || fail "lintian found errors"

# The tree gets the package's dependencies from Debian's archive (mmdebstrap
# resolves them with apt, and removes apt's lists at the end), then the .deb
# goes in with dpkg -i, offline, its maintainer scripts run as on a server.
depends="$(dpkg-deb -f "$deb" Depends | sed 's/([^)]*)//g; s/|[^,]*//g; s/[[:space:]]//g')"
step "mmdebstrap: a clean Debian 12 tree with $depends"
mmdebstrap --quiet --mode=root --variant=apt --include="$depends" bookworm \
  "$root" >"$work/mmdebstrap.log" 2>&1 ||
  { tail -30 "$work/mmdebstrap.log"; fail "mmdebstrap"; }
cp "$deb" "$root/tmp/"
step "dpkg -i $(basename "$deb") in it"
chroot "$root" env DEBIAN_FRONTEND=noninteractive dpkg -i "/tmp/$(basename "$deb")" \
  >"$work/install.log" 2>&1 || { tail -30 "$work/install.log"; fail "install"; }
cat "$work/install.log"

step "checking the installed package"
in_root() { chroot "$root" "$@"; }
uid="$(in_root id -u popgate)" || fail "no popgate user"
gid="$(in_root id -g popgate)"
[[ "$uid" -lt 1000 ]] || fail "popgate is not a system user (uid $uid)"
[[ "$(in_root stat -c '%U:%G %a' /etc/popgate)" == "root:popgate 750" ]] ||
  fail "/etc/popgate: $(in_root stat -c '%U:%G %a' /etc/popgate)"
for f in /usr/sbin/popgate /lib/systemd/system/popgate.service \
  /usr/share/man/man8/popgate.8.gz /usr/share/man/man5/popgate.toml.5.gz \
  /usr/share/doc/popgate/examples/popgate.toml \
  /usr/share/doc/popgate/examples/seccomp/popgate.json \
  /usr/share/doc/popgate/examples/grafana/popgate.json \
  /usr/share/doc/popgate/operations.md; do
  # dh_compress gzips docs over 4 KiB.
  [[ -e "$root$f" || -e "$root$f.gz" ]] || fail "missing $f"
done
[[ -L "$root/etc/systemd/system/multi-user.target.wants/popgate.service" ]] ||
  fail "popgate.service is not enabled"
grep -q '^ConditionPathExists=/etc/popgate/popgate.toml$' \
  "$root/lib/systemd/system/popgate.service" || fail "unit lacks its condition"
[[ ! -e "$root/etc/popgate/popgate.toml" ]] || fail "a config was installed"
in_root popgate --version
in_root popgate --help >/dev/null

step "popgate --check-config of the example, as the popgate user"
bash "$here/scripts/make-example-files.sh" "$root/etc/popgate" "$uid" "$gid"
cp "$root/usr/share/doc/popgate/examples/popgate.toml" "$root/etc/popgate/"
chgrp "$gid" "$root/etc/popgate/popgate.toml"
chmod 0640 "$root/etc/popgate/popgate.toml"
in_root setpriv --reuid="$uid" --regid="$gid" --clear-groups \
  popgate --check-config /etc/popgate/popgate.toml ||
  fail "the example config does not load"
# And a broken one is refused with its file:line.
sed 's/^auth_threads = 4/auth_threads = "four"/' \
  "$root/etc/popgate/popgate.toml" >"$root/tmp/bad.toml"
if out="$(in_root popgate --check-config /tmp/bad.toml 2>&1)"; then
  fail "a bad config passed: $out"
fi
# One JSON line (docs/logging.md): the file:line text is its "error".
[[ "$out" == '{"time":"'*'"level":"error","event":"config_error","error":"/tmp/bad.toml:'[0-9]*:* ]] ||
  fail "no JSON config_error with file:line in: $out"
echo "refused as expected: $out"

step "popgate runs in the tree (loopback, SIGTERM)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$root/tmp/run.toml" <<TOML
[server]
workers = 1
shutdown_grace = "1s"
allow_root = true
[[listener]]
address = "127.0.0.1:$port"
default_tenant = "t"
[[tenant]]
name = "t"
domains = ["example.com"]
auth = "backend"
backends = [ { address = "127.0.0.1:$((port == 65535 ? 1 : port + 1))" } ]
TOML
# chroot and setpriv exec: $! is popgate's PID.
chroot "$root" setpriv --reuid="$uid" --regid="$gid" --clear-groups \
  popgate --config /tmp/run.toml 2>"$work/run.log" &
pid=$!
for _ in $(seq 100); do
  grep -q '"event":"listening"' "$work/run.log" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
grep -q '"event":"listening"' "$work/run.log" ||
  { kill "$pid" 2>/dev/null; cat "$work/run.log"; fail "popgate did not start"; }
greeting="$(python3 -c "import socket; s=socket.create_connection(('127.0.0.1',$port),5); print(s.recv(100).decode().strip())")"
[[ "$greeting" == "+OK"* ]] || fail "greeting: $greeting"
kill -TERM "$pid"
wait "$pid" || fail "popgate exited $? after SIGTERM"
grep -q '"event":"stopped"' "$work/run.log" || fail "no stopped event"
echo "greeting: $greeting; stopped cleanly"

step "OK: package built, lintian clean of errors, installs and runs on a clean Debian 12"
