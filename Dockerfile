# syntax=docker/dockerfile:1
#
# orgbilling production image.
#
#   docker build -t orgbilling .
#   docker compose up --build          # the whole stack: see docker-compose.yml
#
# Two stages: `builder` installs requirements.txt into a virtualenv at /opt/venv; `runtime`
# copies only that virtualenv and the application code, and runs as an unprivileged user.
# Every pinned dependency ships a binary wheel for linux/amd64 and linux/arm64 (psycopg uses
# psycopg[binary], so neither libpq nor a compiler is needed in either stage).

ARG PYTHON_VERSION=3.11

############################################################################################
FROM python:${PYTHON_VERSION}-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Only requirements.txt first, so code changes do not invalidate the dependency layer.
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

############################################################################################
FROM python:${PYTHON_VERSION}-slim AS runtime

ARG APP_UID=10001
ARG APP_GID=10001

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=orgbilling.settings.production \
    WEB_CONCURRENCY=2 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/orgbilling-prometheus

# The unprivileged user every process runs as. It gets a writable home directory because
# gunicorn keeps its control socket in ~/.gunicorn/; /app itself is not writable by it.
RUN groupadd --gid "${APP_GID}" app \
    && useradd --uid "${APP_UID}" --gid app --home-dir /home/app --create-home \
       --shell /usr/sbin/nologin app \
    && install -d -o app -g app -m 0700 /var/lib/orgbilling/settlement-spool

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# Code and collected static files stay owned by root: the app user can read, not modify them.
COPY . /app

# Static files are collected at build time. Production settings require these variables,
# so dummy values are given to this one command only; none of them is baked into the image.
RUN DJANGO_SECRET_KEY=build-only-not-a-secret \
    DATABASE_URL=postgres://build/build \
    DJANGO_ALLOWED_HOSTS=build \
    python manage.py collectstatic --noinput --verbosity 0 \
    && python -m compileall -q /app \
    && chmod 0755 /app/scripts/docker-entrypoint.sh

# Settlements the database refused wait here until charged (README "Gateway: disconnects and
# refused settlements"); docker-compose.yml mounts one volume here for web and worker.
ENV LLM_SETTLEMENT_SPOOL_DIR=/var/lib/orgbilling/settlement-spool
USER ${APP_UID}:${APP_GID}

EXPOSE 8000

# GET /healthz (200 when the database answers, 503 otherwise). The entrypoint's `healthcheck`
# command sends `X-Forwarded-Proto: https` (SECURE_SSL_REDIRECT would otherwise answer 301)
# and a Host header taken from DJANGO_ALLOWED_HOSTS (otherwise 400 DisallowedHost).
# Only the web process listens: docker-compose.yml overrides this for the worker and beat.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/app/scripts/docker-entrypoint.sh", "healthcheck"]

ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]

# ASGI under gunicorn with uvicorn workers. The number of workers is WEB_CONCURRENCY
# (read by gunicorn itself); FORWARDED_ALLOW_IPS (also read by gunicorn) lists the reverse
# proxies trusted for X-Forwarded-For in the access log. /app/gunicorn.conf.py keeps the
# workers' shared metrics directory (PROMETHEUS_MULTIPROC_DIR) right.
CMD ["gunicorn", "orgbilling.asgi:application", \
     "--worker-class", "uvicorn_worker.UvicornWorker", \
     "--bind", "0.0.0.0:8000", \
     "--access-logfile", "-", \
     "--graceful-timeout", "30"]
