# syntax=docker/dockerfile:1.7
# Airflow with Vigil's DAGs: the Airflow side only (crawl, spread, alerts; never `detectors`). One image for the
# api-server, scheduler, dag-processor, triggerer, the KubernetesExecutor's task pods and `vigil setup`.
#
#   docker build -f infra/docker/airflow.Dockerfile -t vigil-airflow .        (from the repository root)
#
# The environment is `infra/install airflow` plus the `postgres` extra (the metadata database driver). No
# ENTRYPOINT: the command is the whole command line (`airflow scheduler`, `vigil setup`), as the official Helm
# chart expects of its image (it runs `bash -c "exec airflow …"`).
# Pin the base by digest for production: FROM python:3.12.12-slim-bookworm@sha256:<digest>.

FROM python:3.12.12-slim-bookworm AS base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIGIL_VENVS=/opt/vigil/venvs \
    VIGIL_PYTHON=python3.12
RUN useradd --uid 10001 --gid 0 --create-home --home-dir /home/vigil --shell /bin/bash vigil

FROM base AS build
WORKDIR /opt/vigil/src
COPY pyproject.toml README.md ./
COPY infra/install infra/install
COPY infra/elasticsearch infra/elasticsearch
COPY infra/alerts infra/alerts
# Airflow pools (pyproject force-includes it; in this image: `airflow pools import /opt/vigil/src/infra/airflow/pools.json`)
COPY infra/airflow infra/airflow
COPY pipeline pipeline
COPY detectors detectors
RUN --mount=type=cache,target=/root/.cache/pip infra/install --no-system --extra postgres airflow

FROM base
COPY --from=build /opt/vigil /opt/vigil
COPY dags /opt/vigil/src/dags
COPY infra/watchlists /opt/vigil/src/infra/watchlists
COPY infra/docker/healthcheck /usr/local/bin/vigil-healthcheck
ENV PATH=/opt/vigil/venvs/airflow/bin:$PATH \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/vigil/src/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    VIGIL_WATCHLIST=/opt/vigil/src/infra/watchlists/example.yaml \
    VIGIL_MEDIA_STORE=/var/lib/vigil/media
RUN install -d -o 10001 -g 0 -m 0770 /opt/airflow /opt/airflow/logs /opt/airflow/auth /var/lib/vigil/media
USER 10001:0
WORKDIR /opt/airflow
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=5 \
  CMD ["vigil-healthcheck", "http://127.0.0.1:8080/api/v2/monitor/health"]
CMD ["airflow", "api-server"]
