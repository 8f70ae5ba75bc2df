#!/usr/bin/env bash
# Add a login to deploy/htpasswd, or change its password: the file deploy/nginx.conf's auth_basic reads.
# No Apache tools needed (openssl only).
#   ./deploy/add-user.sh NAME              asks for the password twice
#   ./deploy/add-user.sh NAME - < FILE     reads it from the first line of standard input (scripts)
# By hand, the same line:  printf '%s:%s\n' NAME "$(openssl passwd -apr1)" >> deploy/htpasswd
# The hash is apr1 (Apache's MD5, 1,000 rounds): nginx checks the password on every request, not once per visit,
# and a SHA-512 crypt hash ($6$) costs 20 times as much CPU per check (README, "Serving a class").
# VAE_LAB_DEPLOY_DIR: the folder holding nginx.conf, tls/ and htpasswd (default: this script's folder).
set -euo pipefail
FILE="${VAE_LAB_DEPLOY_DIR:-$(cd "$(dirname "$0")" && pwd)}/htpasswd"
name="${1:-}"
if [[ ! "$name" =~ ^[A-Za-z0-9._@-]{1,64}$ ]]; then
  echo "usage: ./deploy/add-user.sh NAME [-]  (NAME: 1-64 letters, digits, . _ @ -)" >&2
  exit 2
fi
if [ "${2:-}" = "-" ]; then
  IFS= read -r password || true
else
  IFS= read -r -s -p "password for $name: " password; echo >&2
  IFS= read -r -s -p "again: " again; echo >&2
  [ "$password" = "$again" ] || { echo "the two passwords differ; nothing changed" >&2; exit 2; }
fi
[ -n "$password" ] || { echo "an empty password is refused; nothing changed" >&2; exit 2; }
hash="$(printf '%s\n' "$password" | openssl passwd -apr1 -stdin)"
umask 022
tmp="$FILE.tmp.$$"
{ [ -f "$FILE" ] && awk -F: -v n="$name" '$1 != n' "$FILE"; printf '%s:%s\n' "$name" "$hash"; } > "$tmp"
mv "$tmp" "$FILE"
echo "$name can log in ($FILE, $(wc -l < "$FILE") login(s))"
