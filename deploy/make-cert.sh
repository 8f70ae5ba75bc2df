#!/usr/bin/env bash
# A self-signed TLS certificate for a classroom network: deploy/tls/cert.pem and deploy/tls/key.pem (the paths
# deploy/nginx.conf reads), valid 365 days for this machine's host names and addresses and any given here.
#   ./deploy/make-cert.sh [NAME_OR_ADDRESS ...]     e.g. ./deploy/make-cert.sh vaelab.school.lan 192.168.1.20
# No authority signed it, so each browser warns once and the person accepts it (or install cert.pem as trusted on
# the room's machines). With a real certificate (e.g. from the school's IT) skip this: copy it and its key to
# those two paths, or point ssl_certificate / ssl_certificate_key in deploy/nginx.conf at them.
# VAE_LAB_DEPLOY_DIR: the folder holding nginx.conf, tls/ and htpasswd (default: this script's folder).
set -euo pipefail
OUT="${VAE_LAB_DEPLOY_DIR:-$(cd "$(dirname "$0")" && pwd)}/tls"
host="$(hostname)"
names=(localhost "$host")
full="$(hostname -f 2>/dev/null || true)"
[ -n "$full" ] && [ "$full" != "$host" ] && names+=("$full")
addrs=(127.0.0.1 ::1)
read -r -a found <<< "$(hostname -I 2>/dev/null || true)"
addrs+=("${found[@]}")
for a in "$@"; do
  if [[ "$a" =~ ^[0-9.]+$ || "$a" == *:* ]]; then addrs+=("$a"); else names+=("$a"); fi
done
san=""
for n in "${names[@]}"; do san+="DNS:$n,"; done
for a in "${addrs[@]}"; do san+="IP:$a,"; done
mkdir -p "$OUT"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 -subj "/CN=$host" \
  -addext "subjectAltName=${san%,}" -keyout "$OUT/key.pem.tmp" -out "$OUT/cert.pem.tmp" 2>/dev/null
chmod 644 "$OUT/cert.pem.tmp"
mv "$OUT/key.pem.tmp" "$OUT/key.pem"
mv "$OUT/cert.pem.tmp" "$OUT/cert.pem"
echo "wrote $OUT/cert.pem and key.pem for ${san%,}"
