# mcp-hub: the hub with its `postgres` and `fast` extras and the Python reference MCP servers (docs/deployment.md).
#
#   docker build -t mcp-hub .
#   docker run -e MCP_HUB_DATABASE_URL=postgresql+asyncpg://... -p 8420:8420 mcp-hub
#
# The base image follows `requires-python` in pyproject.toml (>= 3.11).
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm

# --- builder: compilers, wheels, and the virtual environment the runtime stage copies ------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# For any dependency without a wheel for this platform; none of it reaches the runtime stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mcp_hub ./mcp_hub
COPY migrations ./migrations
# The reference servers' minimum versions are the test extra's (pyproject.toml).
RUN pip wheel --wheel-dir /wheels ".[postgres,fast]" \
        "mcp-server-time>=2026.10.19" "mcp-server-fetch>=2026.10.24" "mcp-server-git>=2026.10.19"
RUN python -m venv /opt/mcp-hub \
    && /opt/mcp-hub/bin/pip install --no-index --find-links /wheels \
        "mcp-hub[postgres,fast]" mcp-server-time mcp-server-fetch mcp-server-git \
    && /opt/mcp-hub/bin/python -c "import asyncpg, uvloop, httptools, mcp_hub" \
    && /opt/mcp-hub/bin/python -m compileall -q /opt/mcp-hub/lib

# --- runtime: no compilers, no pip cache, a non-root user ----------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# git for mcp-server-git; tini as PID 1, so the stdio downstreams' children are reaped and signals are passed on.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 mcp-hub \
    && useradd --system --uid 10001 --gid mcp-hub --home-dir /var/lib/mcp-hub --create-home --shell /usr/sbin/nologin mcp-hub
COPY --from=builder /opt/mcp-hub /opt/mcp-hub
# The containerised topology's configuration (PostgreSQL, Redis, auth on); mount your own over it.
COPY deploy/config.toml /etc/mcp-hub/config.toml
COPY deploy/connectors /etc/mcp-hub/connectors
COPY deploy/docker-entrypoint.sh /usr/local/bin/docker-entrypoint
ENV PATH=/opt/mcp-hub/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MCP_HUB_CONFIG=/etc/mcp-hub/config.toml \
    MCP_HUB_MIGRATE_ON_START=1 \
    MCP_HUB_HEALTHCHECK_URL=http://127.0.0.1:8420/readyz
USER 10001:10001
WORKDIR /var/lib/mcp-hub
EXPOSE 8420
# Ready (200) only once every connector made its first attempt, and not while stopping (mcp_hub/gateway/readiness.py).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['MCP_HUB_HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["tini", "--", "docker-entrypoint"]
CMD ["serve"]
