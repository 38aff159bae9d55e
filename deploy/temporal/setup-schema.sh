#!/bin/sh
# Create Temporal's databases on PostgreSQL and bring their schemas up to date.
# Runs in the temporalio/admin-tools image before the server starts; idempotent: on an existing
# database `create` fails harmlessly, `setup-schema -v 0.0` keeps the recorded version and
# `update-schema` applies only newer versions (this is also how a server upgrade migrates).
set -eu

: "${POSTGRES_SEEDS:=postgres}"
: "${DB_PORT:=5432}"
: "${POSTGRES_USER:=temporal}"
export SQL_PASSWORD="${POSTGRES_PWD:-}"
schema_root=/etc/temporal/schema/postgresql/v12

sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" \
        -u "$POSTGRES_USER" "$@"
}

for pair in "${DBNAME:-temporal}:temporal" "${VISIBILITY_DBNAME:-temporal_visibility}:visibility"; do
    db="${pair%%:*}"
    dir="$schema_root/${pair#*:}/versioned"
    echo "temporal-schema: database $db"
    sql_tool --db "$db" create 2>/dev/null || echo "temporal-schema: $db exists"
    sql_tool --db "$db" setup-schema -v 0.0
    sql_tool --db "$db" update-schema -d "$dir"
done
echo "temporal-schema: done"
