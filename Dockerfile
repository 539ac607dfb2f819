# One image for every role: `docker run IMAGE` runs the embedded system; compose.yaml picks
# `bot`, `worker ...` or `db upgrade` as the command. Needs BuildKit (Docker 20.10+, or compose):
#   docker build -t circuitboard .
# Offline or behind a TLS-inspecting proxy, every input can be swapped by a build argument
# (tests/deploy/compose.test.yaml does this):
#   BASE_IMAGE       any Debian-based image; python3 is installed from apt when it has none
#   TORCH_WHEELS     an image holding torch wheels in /wheels (e.g. built from a local wheel folder);
#                    with buildx also `--build-context torch-wheels=/path/to/wheels`
#   TORCH_INDEX_URL  where torch comes from ("" = the default index, with TORCH_WHEELS first)
#   secret `ca`      a CA bundle for pip (`--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt`)
ARG BASE_IMAGE=python:3.11-slim
ARG TORCH_WHEELS=scratch

FROM ${TORCH_WHEELS} AS torch-wheels

FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    CIRCUITBOARD_DATA_DIR=/data

# bubblewrap: the sandbox that runs submitted code (the worker refuses to run without it).
# A Debian base without Python gets Debian's (3.11 on bookworm). Everything is installed into a
# virtual environment, whatever the base, so the sandbox binds one prefix read-only.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap \
       $(command -v python3 >/dev/null || echo python3 python3-venv) \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

# Torch first, pinned, from PyTorch's CPU index: the Linux wheel on PyPI pulls in CUDA (gigabytes).
# For a GPU worker image: --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN --mount=type=bind,from=torch-wheels,target=/wheels \
    --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} --find-links /wheels \
       torch==2.13.0

WORKDIR /app

# Dependencies in their own layer (stub packages and an empty README stand in for the code and
# docs), so editing either does not reinstall them. torch==2.13.0 is already satisfied above.
COPY pyproject.toml ./
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && mkdir bot puzzles storage \
    && touch README.md bot/__init__.py puzzles/__init__.py storage/__init__.py \
    && pip install ".[postgres,redis]" \
    && rm -rf README.md bot puzzles storage build

COPY README.md alembic.ini ./
COPY bot ./bot
COPY puzzles ./puzzles
COPY storage ./storage
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && pip install --no-deps --force-reinstall . \
    && rm -rf build \
    && circuitboard --help >/dev/null

# Run as an unprivileged user; /data (the embedded SQLite database, the generated verification
# seed, locks) is its volume. Not root on purpose: the worker's bubblewrap then uses an
# unprivileged user namespace, which compose.yaml allows with a seccomp profile and no capability.
RUN useradd --system --uid 10001 --user-group --create-home --shell /usr/sbin/nologin circuitboard \
    && mkdir -p /data \
    && chown circuitboard:circuitboard /data
USER circuitboard
# matplotlib's font cache, built once here instead of at every container start (verdict plots).
RUN python3 -c "import matplotlib.font_manager"
WORKDIR /data
VOLUME ["/data"]

# Healthy = the database is reachable and migrated to this image's schema (compose.yaml adds a
# sandbox self-check for workers).
HEALTHCHECK --interval=30s --timeout=15s --start-period=60s --retries=3 \
    CMD ["circuitboard", "db", "check"]

ENTRYPOINT ["circuitboard"]
CMD ["run"]
