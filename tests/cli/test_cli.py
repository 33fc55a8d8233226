"""The `fabpass` script: every command loads, and the node never imports the server stack."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from fabpass.cli import COMMANDS, SUMMARIES, _load, main


def test_every_command_loads_and_has_a_summary() -> None:
    assert set(COMMANDS) == set(SUMMARIES)
    for name, target in COMMANDS.items():
        command = _load(target)
        assert command.name == name or name == "node", (name, command.name)
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_node_subcommands_are_attached() -> None:
    result = CliRunner().invoke(main, ["node", "--help"])
    assert result.exit_code == 0, result.output
    for sub in ("provision", "doctor", "revoke"):
        assert sub in result.output


def test_node_command_does_not_load_flask_or_sqlalchemy() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from fabpass.cli import main\n"
        "r = CliRunner().invoke(main, ['node', '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "import controller.daemon\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'flask', 'sqlalchemy', 'jinja2', 'alembic'})\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
