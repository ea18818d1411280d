#!/usr/bin/env bash
# Schema check of the deployment files (issue 11):
#  * deploy/kubernetes/*.yaml against the Kubernetes API's schemas, with
#    npm's kubernetes-models (JSON schemas of the Kubernetes OpenAPI spec,
#    compiled with ajv) and @kubernetes/client-node's type maps (unknown
#    fields are errors); see scripts/check-manifests/check.mjs. Offline once
#    the packages are installed: they live in a cache directory
#    (POPGATE_NPM_CACHE, default /var/tmp/popgate-check-manifests), not in
#    the tree, and are reinstalled (npm ci, pinned by package-lock.json)
#    only when the lock file changes.
#  * deploy/seccomp/popgate.json: well-formed, io_uring allowed, and the
#    same list scripts/make-seccomp-profile.py writes.
#  * deploy/systemd/popgate.service with systemd-analyze verify.
#
#   scripts/check-manifests.sh           exit 0 if all pass
# scripts/test.sh (CI) runs it beside the release tests.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
tool="$here/scripts/check-manifests"
cache="${POPGATE_NPM_CACHE:-/var/tmp/popgate-check-manifests}"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "check-manifests: installing nodejs and npm"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
mkdir -p "$cache"
if ! cmp -s "$tool/package-lock.json" "$cache/package-lock.json" ||
  [[ ! -d "$cache/node_modules" ]]; then
  echo "check-manifests: npm ci in $cache"
  cp "$tool/package.json" "$tool/package-lock.json" "$cache/"
  (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error)
fi
cp "$tool/check.mjs" "$cache/"

status=0
echo "== Kubernetes manifests"
node "$cache/check.mjs" "$here"/deploy/kubernetes/*.yaml || status=1

echo "== seccomp profile"
python3 - "$here" <<'PY' || status=1
import json, pathlib, subprocess, sys, tempfile
root = pathlib.Path(sys.argv[1])
path = root / "deploy/seccomp/popgate.json"
p = json.loads(path.read_text())
assert p["defaultAction"] == "SCMP_ACT_ERRNO", "default must refuse"
names = {n for rule in p["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"
         for n in rule["names"]}
missing = {"io_uring_setup", "io_uring_enter", "io_uring_register"} - names
assert not missing, f"not allowed: {sorted(missing)}"
with tempfile.TemporaryDirectory() as d:
    out = pathlib.Path(d) / "p.json"
    subprocess.run([sys.executable, str(root / "scripts/make-seccomp-profile.py"),
                    str(out)], check=True, capture_output=True)
    fresh = {n for rule in json.loads(out.read_text())["syscalls"]
             for n in rule["names"]}
if fresh != names:
    print(f"{path}: differs from scripts/make-seccomp-profile.py's list "
          f"(+{sorted(fresh - names)} -{sorted(names - fresh)}): rerun it")
    sys.exit(1)
print(f"{path}: ok ({len(names)} system calls allowed, io_uring among them)")
PY

echo "== systemd unit"
# The unit names /usr/sbin/popgate: verify a copy that points at a stand-in
# so that a machine without the package installed can check it too.
unit_dir="$(mktemp -d)"
trap 'rm -rf "$unit_dir"' EXIT
sed "s|/usr/sbin/popgate|/bin/true|g" "$here/deploy/systemd/popgate.service" \
  >"$unit_dir/popgate.service"
if out="$(systemd-analyze verify --man=no "$unit_dir/popgate.service" 2>&1)" &&
  [[ -z "$out" ]]; then
  echo "deploy/systemd/popgate.service: ok"
else
  echo "$out"
  echo "deploy/systemd/popgate.service: systemd-analyze verify complained"
  status=1
fi

if ((status == 0)); then echo "check-manifests: OK"; else echo "check-manifests: FAILED"; fi
exit $status
