#!/usr/bin/env bash
# Install PostgreSQL from Debian and start a private cluster on loopback for the test suite.
# Prints the export line for TIERS_TEST_POSTGRES_URL. Safe to run again (recreates the cluster).
set -euo pipefail

PORT="${TIERS_CI_PG_PORT:-54329}"
CLUSTER=tiersci

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v pg_createcluster >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi
VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"

# The server refuses to run as root: Debian's cluster tools run it as the postgres user.
if pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$VERSION $CLUSTER"; then
    pg_dropcluster --stop "$VERSION" "$CLUSTER" >&2
fi
pg_createcluster "$VERSION" "$CLUSTER" --port "$PORT" -- --auth-local=peer --auth-host=scram-sha-256 >&2
# Loopback only, and fast (a test cluster loses nothing worth an fsync).
cat >> "/etc/postgresql/$VERSION/$CLUSTER/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
CONF
pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
su postgres -c "psql -q -p $PORT -c \"CREATE ROLE tiers LOGIN PASSWORD 'tiers-ci-only'\"" >&2
su postgres -c "createdb -p $PORT -O tiers tiers_test" >&2
echo "export TIERS_TEST_POSTGRES_URL='postgresql+psycopg://tiers:tiers-ci-only@127.0.0.1:$PORT/tiers_test'"
