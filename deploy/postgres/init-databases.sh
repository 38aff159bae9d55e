#!/bin/sh
# First start of the PostgreSQL container only (docker-entrypoint-initdb.d): create the role and
# database of the session store. Temporal's own databases are created by the temporal-schema job.
set -eu
psql --username "$POSTGRES_USER" --dbname postgres -v ON_ERROR_STOP=1 \
    -v user="${SESSIONS_DB_USER:-sessions}" \
    -v password="${SESSIONS_DB_PASSWORD:-sessions}" \
    -v db="${SESSIONS_DB_NAME:-sessions}" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"user";
SQL
