#!/usr/bin/env bash
# The local images the deployment test builds from (no image registry here); each made once:
#   circuitboard-test/debian:bookworm    a minimal Debian made by debootstrap (~1-3 min)
#   circuitboard-test/torch-wheels       the pinned CPU torch wheel from pip's local wheel folder
# Needs root and a running Docker engine. Idempotent: existing images are kept.
set -euo pipefail

BASE=circuitboard-test/debian:bookworm
WHEELS=circuitboard-test/torch-wheels:latest
MIRROR="${CB_TEST_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
  rootfs="$(mktemp -d /var/tmp/cb-rootfs.XXXXXX)"
  echo "building $BASE with debootstrap from $MIRROR"
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >/dev/null
  tar -C "$rootfs" -c . | docker import - "$BASE" >/dev/null
  rm -rf "$rootfs"
fi

if ! docker image inspect "$WHEELS" >/dev/null 2>&1; then
  # pip's configured find-links folder (pip config list: ...find-links='/opt/wheels')
  dir="${CB_TEST_WHEEL_DIR:-$(pip3 config list 2>/dev/null | sed -n "s/.*find-links='\([^' ]*\).*/\1/p" | head -n1)}"
  wheel="$(ls "${dir:-/nonexistent}"/torch-2.13.0*cp311*.whl 2>/dev/null | head -n1 || true)"
  if [ -z "$wheel" ]; then
    echo "no torch 2.13.0 cp311 wheel in '${dir}': set CB_TEST_WHEEL_DIR" >&2
    exit 1
  fi
  echo "making $WHEELS from $wheel"
  tar -C "$(dirname "$wheel")" -c "$(basename "$wheel")" | docker import - "$WHEELS" >/dev/null
fi
echo "images ready: $BASE $WHEELS"
