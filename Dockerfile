# One image for every role: `docker run IMAGE` runs the embedded system; compose.yaml picks
# `bot`, `worker ...` or `db upgrade` as the command. Build: `docker build -t circuitboard .`
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CIRCUITBOARD_DATA_DIR=/data

# bubblewrap: the sandbox that runs submitted code (the worker refuses to run without it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/*

# Torch first, pinned, from PyTorch's CPU index: the Linux wheel on PyPI pulls in CUDA (gigabytes).
# For a GPU worker image: --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0

WORKDIR /app

# Dependencies in their own layer (stub packages stand in for the code), so editing the code
# does not reinstall them. torch==2.13.0 is already satisfied by the CPU build above.
COPY pyproject.toml README.md ./
RUN mkdir bot puzzles storage \
    && touch bot/__init__.py puzzles/__init__.py storage/__init__.py \
    && pip install ".[postgres,redis]" \
    && rm -rf bot puzzles storage build

COPY alembic.ini ./
COPY bot ./bot
COPY puzzles ./puzzles
COPY storage ./storage
RUN pip install --no-deps --force-reinstall . \
    && rm -rf build \
    && circuitboard --help >/dev/null

# Run as an unprivileged user; /data (the embedded SQLite database, blobs, locks) is its volume.
RUN useradd --system --uid 10001 --user-group --create-home --shell /usr/sbin/nologin circuitboard \
    && mkdir -p /data \
    && chown circuitboard:circuitboard /data
USER circuitboard
WORKDIR /data
VOLUME ["/data"]

# Healthy = the database is reachable and migrated to this image's schema.
HEALTHCHECK --interval=30s --timeout=15s --start-period=60s --retries=3 \
    CMD ["circuitboard", "db", "check"]

ENTRYPOINT ["circuitboard"]
CMD ["run"]
