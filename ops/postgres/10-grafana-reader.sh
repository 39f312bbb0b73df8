#!/bin/sh
# Runs once, at the first start of the compose stack's PostgreSQL (the image runs the scripts
# in /docker-entrypoint-initdb.d when its data directory is empty): creates Grafana's
# read-only role with ops/postgres/grafana-reader.sql, as POSTGRES_USER, the user the index
# sink writes as, so its default privileges cover the tables the sink creates later.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v reader=provenant_grafana -v reader_password="$GRAFANA_INDEX_PASSWORD" \
  -f /etc/provenant/grafana-reader.sql
