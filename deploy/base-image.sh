#!/usr/bin/env bash
# A Python 3.11 base image made from Debian's own mirror (bookworm ships python3.11), for a machine that reaches
# Debian's mirror and PyPI but not Docker Hub, where deploy/Dockerfile's default base (python:3.11-slim) lives.
# Needs root, debootstrap (apt-get install debootstrap) and podman or docker.
#   sudo ./deploy/base-image.sh [TAG]        # default TAG: localhost/vae-lab-base:bookworm
#   podman build --build-arg BASE=localhost/vae-lab-base:bookworm -f deploy/Dockerfile -t vae-lab .
# DEBIAN_MIRROR picks another mirror; CONTAINER_ENGINE another engine (default: podman, else docker).
set -euo pipefail
TAG="${1:-localhost/vae-lab-base:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ENGINE="${CONTAINER_ENGINE:-$(command -v podman || command -v docker || true)}"
[ -n "$ENGINE" ] || { echo "deploy/base-image.sh: neither podman nor docker is installed" >&2; exit 2; }
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$MIRROR" >&2
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | "$ENGINE" import --change 'CMD ["python3"]' - "$TAG"
echo "made $TAG"
