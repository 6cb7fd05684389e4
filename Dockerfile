# syntax=docker/dockerfile:1
#
# Support gateway image.
#
#   docker build -t support-gateway .
#   docker compose up --build        # with MongoDB, see compose.yaml
#
# The image has no embedded database (SecantusDB is an optional extra that is
# not installed): MONGODB_URI must always be set when the container runs.

# --- builder: resolve the pinned, hash-checked dependencies into a venv -----
FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python -m venv /opt/venv

WORKDIR /src

# Dependencies first, so editing the application does not reinstall them.
COPY requirements/runtime.lock requirements/runtime.lock
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements/runtime.lock

# The project itself; its dependencies are exactly the lock file's, hence --no-deps.
COPY pyproject.toml LICENSE ./
COPY gateway/ gateway/
COPY channels/ channels/
COPY agent_bridge/ agent_bridge/
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps .

# --- runtime: just the venv, the configuration and an unprivileged user -----
FROM python:3.11-slim-bookworm

ARG APP_UID=10001
ARG APP_GID=10001

LABEL org.opencontainers.image.title="support-gateway" \
      org.opencontainers.image.description="Customer-support gateway: channel adapters, an AI responder, and handoff to human agents in Slack." \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid "${APP_GID}" gateway \
    && useradd --system --uid "${APP_UID}" --gid "${APP_GID}" \
        --home-dir /app --no-create-home --shell /usr/sbin/nologin gateway \
    && install -d -o "${APP_UID}" -g "${APP_GID}" -m 0750 /data

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# Read-only for the gateway user: owned by root, world-readable.
COPY config/ config/

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080 \
    GATEWAY_DATA_DIR=/data \
    KB_DIR=/app/config/kb

VOLUME ["/data"]

USER ${APP_UID}:${APP_GID}

EXPOSE 8080

# python:slim has no curl: probe /healthz with the standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_PORT', '8080'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]

CMD ["gateway"]
