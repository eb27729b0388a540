#!/usr/bin/env bash
# Starts a local single-member etcd for the control-plane tests on a Debian 12 machine and
# prints its client URL as the only line on stdout (progress goes to stderr), so CI can capture it:
#
#   CAIRN_TEST_ETCD_URL="$(bash scripts/start-etcd.sh)"
#   export CAIRN_TEST_ETCD_URL
#
# Idempotent: installs etcd-server from Debian only when /usr/bin/etcd is missing (needs root
# then), starts etcd only when nothing answers on the client URL, and waits until it is healthy.
# The member listens on loopback only; its data lives in $CAIRN_ETCD_DATA_DIR (default
# /tmp/cairn-etcd) and its log in <data dir>.log. It keeps running after this script exits.
set -euo pipefail

HOST="127.0.0.1"
CLIENT_PORT="${CAIRN_ETCD_CLIENT_PORT:-2379}"
PEER_PORT="${CAIRN_ETCD_PEER_PORT:-2380}"
DATA_DIR="${CAIRN_ETCD_DATA_DIR:-/tmp/cairn-etcd}"
READY_TIMEOUT_SECONDS=60
URL="http://$HOST:$CLIENT_PORT"

say() { echo "start-etcd: $*" >&2; }

healthy() {
  # etcd answers {"health":"true"} once it has a leader and serves requests. Node, not curl:
  # a fresh Debian image has node (the project needs it) but not always curl.
  node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(2000) }).then((r) => r.text()).then((t) => process.exit(/"health":"true"/.test(t) ? 0 : 1), () => process.exit(1))' "$URL/health"
}

if ! [ -x /usr/bin/etcd ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "/usr/bin/etcd is missing; run me as root to install etcd-server from Debian"
    exit 1
  fi
  say "installing etcd-server from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq etcd-server >/dev/null
fi

if healthy; then
  say "ready: etcd already answers on $URL"
  echo "$URL"
  exit 0
fi

mkdir -p "$DATA_DIR"
say "starting etcd on $URL (data in $DATA_DIR)"
# setsid + nohup: the member outlives this script and the CI step that ran it.
setsid nohup /usr/bin/etcd \
  --name cairn-test \
  --data-dir "$DATA_DIR" \
  --listen-client-urls "$URL" \
  --advertise-client-urls "$URL" \
  --listen-peer-urls "http://$HOST:$PEER_PORT" \
  --initial-advertise-peer-urls "http://$HOST:$PEER_PORT" \
  --initial-cluster "cairn-test=http://$HOST:$PEER_PORT" \
  >"$DATA_DIR.log" 2>&1 </dev/null &

waited=0
until healthy; do
  if [ "$waited" -ge "$READY_TIMEOUT_SECONDS" ]; then
    say "etcd did not become healthy on $URL within ${READY_TIMEOUT_SECONDS}s; last log lines:"
    tail -n 20 "$DATA_DIR.log" >&2 || true
    exit 1
  fi
  sleep 1
  waited=$((waited + 1))
done
say "ready: etcd $(/usr/bin/etcd --version | head -n 1 | awk '{print $3}') on $URL"
echo "$URL"
