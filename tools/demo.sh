#!/usr/bin/env bash
# README command 1: install what the demo needs, then run `fabpass demo` (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/bootstrap.sh demo
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    # Optional: the demo falls back to an embedded Python broker when this fails.
    apt_install mosquitto >/dev/null 2>&1 || echo "mosquitto not installed: the demo uses its embedded broker"
fi
exec .venv/bin/fabpass demo "$@"
