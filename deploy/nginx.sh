#!/usr/bin/env bash
# Run nginx with deploy/nginx.conf, in the foreground (Ctrl-C stops it), with this folder as its prefix: logs, pid
# and temporary files go to deploy/var/, the certificate and the logins are read from deploy/tls/ and deploy/htpasswd.
#   ./deploy/nginx.sh          serve (https://SERVER:8443, http://SERVER:8080)
#   ./deploy/nginx.sh -t       check the configuration (certificate and login file included) and exit
# Any other nginx option is passed on. NGINX overrides the binary (default: nginx on PATH, else /usr/sbin/nginx);
# VAE_LAB_DEPLOY_DIR the folder holding nginx.conf, tls/ and htpasswd (default: this script's folder).
# Run it as yourself, not root: the ports are above 1024, and nginx started as root reads the logins as `nobody`.
set -euo pipefail
DIR="$(cd "${VAE_LAB_DEPLOY_DIR:-$(dirname "$0")}" && pwd)"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
missing=()
[ -f "$DIR/tls/cert.pem" ] && [ -f "$DIR/tls/key.pem" ] || missing+=("a certificate: ./deploy/make-cert.sh")
[ -s "$DIR/htpasswd" ] || missing+=("a login: ./deploy/add-user.sh NAME")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'deploy/nginx.sh: first make %s\n' "${missing[@]}" >&2
  exit 2
fi
mkdir -p "$DIR/var"
exec "$NGINX" -p "$DIR/" -c nginx.conf -e var/error.log -g "daemon off;" "$@"
