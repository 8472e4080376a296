# syntax=docker/dockerfile:1
# The trading mesh: one image for the orchestrator, every agent, the API and the dashboard.
#
#   docker build -t tradingmesh .
#   docker run --rm tradingmesh                       # tradingmesh up, with a private Redis
#   docker run --rm tradingmesh tradingmesh run       # replay the sample data and report
#   docker compose up                                 # one container per agent + redis
#
# No .dockerignore is needed: only the folders below are copied (not .venv, var/, .git).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# redis-server: lets a lone `docker run` start its own private Redis (as scripts/launch.sh
# does) instead of the embedded stand-in; under compose the `redis` service is used instead.
# No compiler or libta-lib: TA-Lib >= 0.6 ships manylinux wheels with the C library bundled
# (amd64 and arm64).  On a platform without a wheel, add build-essential and libta-lib here.
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# The package first (its dependencies are the slow layer), then data and config.
COPY pyproject.toml README.m[d] ./
COPY backend ./backend
COPY agents ./agents
COPY orchestrator ./orchestrator
COPY dashboard ./dashboard
RUN pip install .

COPY config ./config
COPY data ./data

# `pip install .` puts the code in site-packages, so the settings' repo-relative defaults
# (var/, data/sample) must be pointed back at /app.  A config file can be mounted and named
# with TRADINGMESH_CONFIG=/app/config/tradingmesh.toml.
ENV TRADINGMESH_VAR_DIR=/app/var \
    TRADINGMESH_DATA_DIR=/app/data/sample

RUN useradd --create-home --uid 10001 --user-group mesh \
    && mkdir -p /app/var \
    && chown -R mesh:mesh /app/var
USER mesh
VOLUME ["/app/var"]

CMD ["tradingmesh", "up"]
