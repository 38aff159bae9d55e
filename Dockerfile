# syntax=docker/dockerfile:1
# durable-sessions: `durable-sessions worker` by default; `serve` runs the HTTP API, `db upgrade`
# the store's migrations, /opt/durable-sessions/setup.sh the one-shot stack setup (namespace,
# search attributes, migrations). Settings come from DURABLE_SESSIONS_* environment variables.
#
#   docker build -t durable-sessions .
#   docker build --build-arg EXTRAS=redis,otel -t durable-sessions .   # with optional extras

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/durable-sessions/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
ARG EXTRAS=""
RUN /opt/durable-sessions/venv/bin/pip install ".${EXTRAS:+[$EXTRAS]}"

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/durable-sessions/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app app
COPY --from=build /opt/durable-sessions/venv /opt/durable-sessions/venv
COPY --chmod=755 deploy/setup.sh /opt/durable-sessions/setup.sh
USER app
WORKDIR /home/app
# 8000: HTTP API (`serve`); 9464: Prometheus metrics of a worker (DURABLE_SESSIONS_METRICS_PORT).
EXPOSE 8000 9464
ENTRYPOINT ["durable-sessions"]
CMD ["worker"]
