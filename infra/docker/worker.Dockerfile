# syntax=docker/dockerfile:1.7
# The GPU detector worker: `vigil worker` (torch on CUDA, transformers, mediapipe; no Airflow).
#
#   docker build -f infra/docker/worker.Dockerfile -t vigil-worker .          (from the repository root)
#   docker run --gpus all --env-file vigil.env -v media:/var/lib/vigil/media -v models:/opt/vigil/models:ro vigil-worker
#
# The Python environment is the one `infra/install worker` builds (pyproject's extras, mediapipe --no-deps): the
# same command a developer runs, so the image never has a dependency list of its own.
# Checkpoints: mounted at /opt/vigil/models (default), or baked with --build-arg MODELS_DIR=<output of
# `vigil models export DIR`> (infra/docker/models/README.md). HF_HUB_OFFLINE=1: nothing is fetched at start.
# torch's wheel brings its own CUDA 13.2 libraries; the `base` flavour of the CUDA image adds only the driver glue
# (NVIDIA_* variables the container toolkit reads), which keeps the image several GB smaller than `runtime`.
# Pin the base by digest for production: FROM nvidia/cuda:13.2.1-base-ubuntu24.04@sha256:<digest>.

FROM nvidia/cuda:13.2.1-base-ubuntu24.04 AS base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIGIL_VENVS=/opt/vigil/venvs \
    VIGIL_PYTHON=python3.12
# Ubuntu's packages follow the pinned base image's release
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.12 python3.12-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --gid 0 --create-home --home-dir /home/vigil --shell /usr/sbin/nologin vigil

FROM base AS build
WORKDIR /opt/vigil/src
COPY pyproject.toml README.md ./
COPY infra/install infra/install
COPY infra/elasticsearch infra/elasticsearch
COPY infra/alerts infra/alerts
COPY infra/airflow infra/airflow
COPY pipeline pipeline
COPY detectors detectors
# the pip cache stays in BuildKit's cache, out of the image
RUN --mount=type=cache,target=/root/.cache/pip infra/install --no-system worker

FROM base
ARG MODELS_DIR=infra/docker/models
COPY --from=build /opt/vigil /opt/vigil
COPY ${MODELS_DIR} /opt/vigil/models/
COPY infra/docker/healthcheck /usr/local/bin/vigil-healthcheck
ENV PATH=/opt/vigil/venvs/worker/bin:$PATH \
    VIGIL_METRICS_PORT=9108 \
    VIGIL_MEDIA_STORE=/var/lib/vigil/media \
    VIGIL_DEVICE=auto \
    VIGIL_LOG_FORMAT=json \
    HF_HUB_OFFLINE=1 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
RUN install -d -o 10001 -g 0 -m 0770 /var/lib/vigil/media
USER 10001:0
WORKDIR /home/vigil
EXPOSE 9108
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=3 CMD ["vigil-healthcheck", "metrics"]
ENTRYPOINT ["vigil"]
CMD ["worker"]
