# syntax=docker/dockerfile:1
# The README's install steps in a container: python -m venv, pip install, `onsite-ballot serve`,
# which applies the migrations and seeds reference data at every start, then serves.
#
#   docker build -t onsite-ballot .
#   docker run -p 8000:8000 -v onsite-data:/var/lib/onsite-ballot onsite-ballot
#   # PostgreSQL, several workers:
#   docker run -p 8000:8000 -e ONSITE_BALLOT_DATABASE_URL=postgresql+psycopg://ballot@db/ballot \
#     onsite-ballot onsite-ballot serve --workers 4
#
# The first start prints an administrator API key once (docker logs). Put a TLS reverse proxy in
# front, with the ballot path kept out of its access log (see the README's production layout).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /srv/onsite-ballot
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The dependencies alone first, so that a change to the code does not download them again: the
# service's lock file, exact versions with hashes (see "Dependencies" in the README), as `make run`.
COPY requirements/service.txt ./requirements/
RUN pip install --require-hashes --no-deps -r requirements/service.txt
COPY README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
# Editable, as `make run` installs it: the app finds migrations/, templates/ and static/ beside
# app/, in the source tree, which a plain wheel in site-packages would leave behind.
RUN pip install --no-deps --no-build-isolation -e . \
 && python -m compileall -q app migrations

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/onsite-ballot --create-home onsite
# Same paths as in the build stage: the editable install and the venv's scripts point at them.
COPY --from=build /opt/venv /opt/venv
COPY --from=build /srv/onsite-ballot /srv/onsite-ballot
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ONSITE_BALLOT_ENVIRONMENT=production \
    ONSITE_BALLOT_HOST=0.0.0.0 \
    ONSITE_BALLOT_PORT=8000 \
    ONSITE_BALLOT_DATA_DIR=/var/lib/onsite-ballot
# The SQLite file and the generated secret key live here; keep it on a volume and back it up
# with `onsite-ballot backup PATH` (docker exec), which is safe while the service runs.
VOLUME /var/lib/onsite-ballot
WORKDIR /var/lib/onsite-ballot
USER onsite
EXPOSE 8000
# /healthz: the process answers. (/readyz also checks the database and the migrations.)
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ONSITE_BALLOT_PORT', '8000'), timeout=2)"]
CMD ["onsite-ballot", "serve"]
