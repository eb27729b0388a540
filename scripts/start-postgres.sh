#!/usr/bin/env bash
# Starts a local PostgreSQL for the metadata-store tests on a Debian 12 machine, as root, and
# prints its URL as the only line on stdout (progress goes to stderr), so CI can capture it:
#
#   CAIRN_TEST_POSTGRES_URL="$(bash scripts/start-postgres.sh)"
#   export CAIRN_TEST_POSTGRES_URL
#
# (Two lines on purpose: `export X="$(cmd)"` returns export's status and hides cmd's failure.)
#
# Idempotent: installs postgresql from Debian only when its server binaries are missing, creates
# the cluster only when none exists, starts it only when it is down, and creates the role and
# the database only when they are missing. Safe to run again on a machine where it already ran.
#
# The database is created UTF8 with the C collation, so text compares in UTF-8 byte order
# (the engine also declares COLLATE "C" on its key columns; this keeps ad-hoc queries honest).
# Durability settings stay at PostgreSQL's defaults (fsync=on, synchronous_commit=on).
set -euo pipefail

ROLE_NAME="cairn"
ROLE_PASSWORD="cairn"
DATABASE_NAME="cairn_test"
CLUSTER_NAME="main"
HOST="127.0.0.1"
READY_TIMEOUT_SECONDS=60

say() { echo "start-postgres: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  say "run me as root (I install packages and start the cluster as the postgres user)"
  exit 1
fi

server_version() {
  # The newest PostgreSQL major whose server binaries are installed, or nothing.
  local version
  for version in $(ls /usr/lib/postgresql 2>/dev/null | sort -rn); do
    if [ -x "/usr/lib/postgresql/$version/bin/postgres" ]; then
      echo "$version"
      return
    fi
  done
}

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(server_version)" ]; then
  say "installing postgresql from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi

VERSION="$(server_version)"
if [ -z "$VERSION" ]; then
  say "no PostgreSQL server found under /usr/lib/postgresql after installing"
  exit 1
fi

# pg_lsclusters -h prints: version cluster port status owner data-directory log-file
cluster_field() {
  pg_lsclusters -h | awk -v version="$VERSION" -v cluster="$CLUSTER_NAME" -v field="$1" \
    '$1 == version && $2 == cluster { print $field }'
}

if [ -z "$(cluster_field 2)" ]; then
  say "creating cluster $VERSION/$CLUSTER_NAME"
  pg_createcluster "$VERSION" "$CLUSTER_NAME" --port=5432 >&2
fi

if [ "$(cluster_field 4)" != "online" ]; then
  say "starting cluster $VERSION/$CLUSTER_NAME"
  pg_ctlcluster "$VERSION" "$CLUSTER_NAME" start >&2
fi

PORT="$(cluster_field 3)"
waited=0
until pg_isready -q -h "$HOST" -p "$PORT"; do
  if [ "$waited" -ge "$READY_TIMEOUT_SECONDS" ]; then
    say "PostgreSQL did not accept connections on $HOST:$PORT within ${READY_TIMEOUT_SECONDS}s"
    exit 1
  fi
  sleep 1
  waited=$((waited + 1))
done

# As the postgres superuser over the local socket (peer authentication).
as_postgres() {
  runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres "$@"
}

if [ "$(as_postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE_NAME'")" != "1" ]; then
  say "creating role $ROLE_NAME"
  as_postgres -c "CREATE ROLE $ROLE_NAME LOGIN PASSWORD '$ROLE_PASSWORD'"
fi

if [ "$(as_postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DATABASE_NAME'")" != "1" ]; then
  say "creating database $DATABASE_NAME"
  as_postgres -c "CREATE DATABASE $DATABASE_NAME OWNER $ROLE_NAME ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
fi

URL="postgres://$ROLE_NAME:$ROLE_PASSWORD@$HOST:$PORT/$DATABASE_NAME"
# Prove the URL works with password authentication over TCP, as the tests will use it.
if ! psql -X -q "$URL" -tAc "SELECT 1" >/dev/null; then
  say "cannot connect to $URL"
  exit 1
fi
say "ready: PostgreSQL $VERSION on $HOST:$PORT"
echo "$URL"
