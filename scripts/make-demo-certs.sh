#!/usr/bin/env bash
# Creates the demo's self-signed certificates (ECDSA P-256 and RSA-2048,
# valid for localhost, 127.0.0.1 and the demo tenants' names) in DIR, unless
# they exist already. Not for production: the keys are made on this machine
# and the certificates are signed by nobody.
set -euo pipefail
dir="${1:?usage: make-demo-certs.sh DIR}"
mkdir -p "$dir"
san="subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:example.com,DNS:*.example.com,DNS:example.org,DNS:*.example.org"
if [[ ! -s "$dir/ecdsa.pem" || ! -s "$dir/ecdsa.key" ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/ecdsa.key" -out "$dir/ecdsa.pem" -days 825 \
    -subj "/CN=popgate demo (ECDSA)" -addext "$san" 2>/dev/null
fi
if [[ ! -s "$dir/rsa.pem" || ! -s "$dir/rsa.key" ]]; then
  openssl req -x509 -newkey rsa:2048 -nodes \
    -keyout "$dir/rsa.key" -out "$dir/rsa.pem" -days 825 \
    -subj "/CN=popgate demo (RSA)" -addext "$san" 2>/dev/null
fi
chmod 600 "$dir"/*.key
