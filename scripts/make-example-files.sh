#!/usr/bin/env bash
# Creates, in DIR, every file deploy/popgate.toml names under /etc/popgate
# and the Kubernetes ConfigMap names (self-signed certificates, a ticket
# key, the admin token, passwd-files with one test user
# each, the master password file), so that the example passes
# `popgate --check-config` in tests (scripts/package-test.sh, the
# test_packaging integration module). Not for production: the keys are made
# here and signed by nobody, and the passwords are known.
#
#   make-example-files.sh DIR [OWNER [GROUP]]
# Names or numbers (a chroot's popgate user has no name on the host).
# OWNER (default: the caller) owns the master password file (mode 0600, as
# popgate requires); GROUP (default: the caller's) may read the rest.
set -euo pipefail
dir="${1:?usage: make-example-files.sh DIR [OWNER [GROUP]]}"
owner="${2:-$(id -u)}"
group="${3:-$(id -g)}"
mkdir -p "$dir/tls"
cert() {  # name, subject alt names, key type args...
  local name="$1" san="$2"
  shift 2
  openssl req -x509 "$@" -nodes -keyout "$dir/tls/$name.key" \
    -out "$dir/tls/$name.pem" -days 30 -subj "/CN=popgate example $name" \
    -addext "subjectAltName=$san" 2>/dev/null
}
cert ecdsa "DNS:pop.example.com,DNS:example.com" \
  -newkey ec -pkeyopt ec_paramgen_curve:P-256
cert rsa "DNS:pop.example.com,DNS:example.com" -newkey rsa:2048
cert example.org "DNS:pop.example.org,DNS:example.org" \
  -newkey ec -pkeyopt ec_paramgen_curve:P-256
# The CA popgate verifies example.com's backends against.
cp "$dir/tls/ecdsa.pem" "$dir/tls/backend-ca.pem"
head -c 32 /dev/urandom >"$dir/ticket.key"
# The admin API's bearer token (the Kubernetes Secret popgate-admin's).
head -c 24 /dev/urandom | base64 >"$dir/admin.token"
# {PLAIN} keeps this script free of hashing tools; production files hold
# ARGON2ID or SHA512-CRYPT hashes (doveadm pw).
echo "alice@example.com:{PLAIN}example-only" >"$dir/example.com.passwd"
echo "bob@example.org:{PLAIN}example-only" >"$dir/example.org.passwd"
echo "example-master-only" >"$dir/example.com.master"
chmod 0640 "$dir"/tls/* "$dir/ticket.key" "$dir/admin.token" "$dir"/*.passwd
chmod 0600 "$dir/example.com.master"
chgrp -R "$group" "$dir"
chown "$owner" "$dir/example.com.master"
