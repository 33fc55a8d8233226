#!/usr/bin/env bash
# README command 2: install and start what the tests need (Mosquitto, PostgreSQL, Chromium,
# Python packages), then run the whole suite (lint, types, tests) with nothing skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/bootstrap.sh test,demo

missing=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt_install "${missing[@]}"
fi

# Mosquitto: the tests start private brokers; the system one is started too if it is stopped.
if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
    mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
    "$mosq" -d -c /etc/mosquitto/mosquitto.conf || echo "note: system mosquitto did not start (tests use their own)"
fi

# PostgreSQL: start the cluster if it is stopped; make password login on 127.0.0.1 work.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    ver=$(ls /etc/postgresql | sort -V | tail -n1)
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || pg_ctlcluster "$ver" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if [ -z "${FABPASS_TEST_DATABASE_URL:-}" ]; then
    url="postgresql+psycopg://postgres:fabpass@127.0.0.1:5432/postgres"
    if ! PGPASSWORD=fabpass psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
        runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD 'fabpass'" >/dev/null
    fi
    export FABPASS_TEST_DATABASE_URL=$url
fi

# axe-core (accessibility checks injected by the browser tests): npm, into the git-ignored .cache/npm.
if [ ! -f .cache/npm/node_modules/axe-core/axe.min.js ]; then
    command -v npm >/dev/null || apt_install npm
    npm install --prefix .cache/npm --no-audit --no-fund --no-save axe-core@4
fi

export FABPASS_CHROMIUM=${FABPASS_CHROMIUM:-$(command -v chromium)}
export FABPASS_NO_SKIP=1
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/pytest -q -ra "$@"
