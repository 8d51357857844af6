# syntax=docker/dockerfile:1.7
# The sink and the analyst console: `vigil sink` (default) or `vigil console --host 0.0.0.0 --port 8080`.
# No GPU, no CUDA base.
#
#   docker build -f infra/docker/service.Dockerfile -t vigil-service .        (from the repository root)
#   docker run --env-file vigil.env vigil-service                              (the sink)
#   docker run --env-file vigil.env -p 8080:8080 --health-cmd 'vigil-healthcheck http://127.0.0.1:8080/healthz' \
#     vigil-service console --host 0.0.0.0 --port 8080
#
# The environment is `infra/install <SIDE>`; the sink lives on the worker side (docs/index.md, "Architecture"), so SIDE
# defaults to worker. The console's health endpoint is /healthz; the sink's is the metrics port.
# Pin the base by digest for production: FROM python:3.12.12-slim-bookworm@sha256:<digest>.

FROM python:3.12.12-slim-bookworm AS base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIGIL_VENVS=/opt/vigil/venvs \
    VIGIL_PYTHON=python3.12
RUN useradd --uid 10001 --gid 0 --create-home --home-dir /home/vigil --shell /usr/sbin/nologin vigil

FROM base AS build
ARG SIDE=worker
WORKDIR /opt/vigil/src
COPY pyproject.toml README.md ./
COPY infra/install infra/install
COPY infra/elasticsearch infra/elasticsearch
COPY infra/alerts infra/alerts
COPY infra/airflow infra/airflow
COPY pipeline pipeline
COPY detectors detectors
RUN --mount=type=cache,target=/root/.cache/pip infra/install --no-system "$SIDE" \
 && ln -s "/opt/vigil/venvs/$SIDE" /opt/vigil/venv

FROM base
COPY --from=build /opt/vigil /opt/vigil
COPY infra/docker/healthcheck /usr/local/bin/vigil-healthcheck
ENV PATH=/opt/vigil/venv/bin:$PATH \
    VIGIL_METRICS_PORT=9108 \
    VIGIL_MEDIA_STORE=/var/lib/vigil/media \
    VIGIL_LOG_FORMAT=json
RUN install -d -o 10001 -g 0 -m 0770 /var/lib/vigil/media
USER 10001:0
WORKDIR /home/vigil
EXPOSE 8080 9108
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["vigil-healthcheck", "metrics"]
ENTRYPOINT ["vigil"]
CMD ["sink"]
