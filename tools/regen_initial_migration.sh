#!/usr/bin/env bash
# Until the first release there is one migration, regenerated from server/models.py.
# After a release, never regenerate: add a new revision with alembic revision --autogenerate.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
tmp=$(mktemp -d)
rm -f server/migrations/versions/0001_initial.py
$py - "$tmp" <<'PY'
import sys
from alembic import command
from server.db import alembic_config
url = f"sqlite:///{sys.argv[1]}/gen.db"
command.revision(alembic_config(url), message="initial schema", autogenerate=True, rev_id="0001")
PY
mv server/migrations/versions/0001_*.py server/migrations/versions/0001_initial.py
.venv/bin/ruff format -q server/migrations/versions/0001_initial.py || true
rm -rf "$tmp"
echo "regenerated server/migrations/versions/0001_initial.py"
