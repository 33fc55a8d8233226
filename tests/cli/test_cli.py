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


def test_database_commands_say_what_is_wrong_with_the_database(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Every command family that opens the database shares one opener: an unmigrated database
    names `fabpass db upgrade`; an unreachable one names the URL without its password."""
    monkeypatch.setenv("FABPASS_DATABASE_URL", f"sqlite:///{tmp_path}/empty.db")
    runner = CliRunner()
    commands = (["grant", "--member", "1", "--machine", "laser-1"],
                ["report", "usage"],
                ["member", "export", "1"],
                ["broker", "config", "--out", str(tmp_path / "b")])
    for args in commands:
        result = runner.invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        assert "fabpass db upgrade" in result.output, (args, result.output)
    monkeypatch.setenv("FABPASS_DATABASE_URL",
                       "postgresql+psycopg://fp:s3cret@127.0.0.1:1/nowhere")
    result = runner.invoke(main, ["report", "usage"])
    assert result.exit_code == 1
    assert "cannot open the database" in result.output and "s3cret" not in result.output
