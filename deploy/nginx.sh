#!/usr/bin/env bash
# Run nginx with deploy/nginx.conf, in the foreground (Ctrl-C stops it), with this folder as its prefix: logs, pid
# and temporary files go to deploy/var/, the certificate and the logins are read from deploy/tls/ and deploy/htpasswd.
#   ./deploy/nginx.sh          serve (https://SERVER:8443, http://SERVER:8080)
#   ./deploy/nginx.sh -t       check the configuration (certificate and login file included) and exit
# Any other nginx option is passed on. VAE_LAB_NGINX overrides the binary (default: nginx on PATH, else
# /usr/sbin/nginx); VAE_LAB_DEPLOY_DIR the folder holding nginx.conf, tls/ and htpasswd (default: this script's folder).
# NGINX is unset before nginx starts: nginx reads that variable as the listening sockets an old binary hands over
# (a live upgrade), and any other value sets it on that path with an [emerg] line in the error log.
# Run it as yourself, not root: the ports are above 1024, and nginx started as root reads the logins as `nobody`.
set -euo pipefail
DIR="$(cd "${VAE_LAB_DEPLOY_DIR:-$(dirname "$0")}" && pwd)"
BIN="${VAE_LAB_NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
unset NGINX
missing=()
[ -f "$DIR/tls/cert.pem" ] && [ -f "$DIR/tls/key.pem" ] || missing+=("a certificate: ./deploy/make-cert.sh")
[ -s "$DIR/htpasswd" ] || missing+=("a login: ./deploy/add-user.sh NAME")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'deploy/nginx.sh: first make %s\n' "${missing[@]}" >&2
  exit 2
fi
mkdir -p "$DIR/var"
exec "$BIN" -p "$DIR/" -c nginx.conf -e var/error.log -g "daemon off;" "$@"
