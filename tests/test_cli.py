"""The command line: exact one-line errors with exit codes, and help for every command."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from newsletter.cli import build_parser, main
from tests.conftest import REPO


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_unknown_config_key_names_the_key_and_the_file(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("smtp:\n  prot: 25\n")
    assert main(["build", "--config", str(config)]) == 2
    assert (
        one_line_error(capsys)
        == f"Error: {config}: unknown key 'smtp.prot' (did you mean 'smtp.port'?)"
    )


def test_unknown_section_names_the_key(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("smpt:\n  host: builtin\n")
    assert main(["check-config", "--config", str(config)]) == 2
    assert one_line_error(capsys) == f"Error: {config}: unknown key 'smpt' (did you mean 'smtp'?)"


def test_bad_config_value_names_key_and_value(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("smtp:\n  port: abc\n")
    assert main(["build", "--config", str(config)]) == 2
    err = one_line_error(capsys)
    assert err.startswith(f"Error: {config}: smtp.port: ")
    assert err.endswith("got 'abc'")


def test_invalid_yaml_names_the_line(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("smtp:\n  host: [unclosed\n")
    assert main(["build", "--config", str(config)]) == 2
    assert one_line_error(capsys).startswith(f"Error: {config}: line ")


def test_missing_config_file(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert main(["build", "--config", str(missing)]) == 2
    assert one_line_error(capsys) == (
        f"Error: config file {missing} not found (pass --config FILE, or run from the project folder)"
    )


def test_as_of_outside_the_data_names_the_range(fast_cli, write_config, capsys):
    config = write_config()
    assert main(["build", "--config", str(config), "--as-of", "1999-01-04"]) == 2
    assert one_line_error(capsys) == (
        "Error: no data for --as-of 1999-01-04: the data covers 2001-05-29 to 2025-09-26 "
        "(IWM and SPY with a year of history)"
    )
    assert main(["build", "--config", str(config), "--as-of", "2025-10-31"]) == 2
    assert "the data covers 2001-05-29 to 2025-09-26" in one_line_error(capsys)


def test_as_of_not_a_date(write_config, capsys):
    assert main(["build", "--config", str(write_config()), "--as-of", "last friday"]) == 2
    assert (
        one_line_error(capsys) == "Error: --as-of must be a date as YYYY-MM-DD, got 'last friday'"
    )


def test_as_of_on_a_holiday_resolves_to_the_session_before(
    fast_cli, write_config, tmp_path, capsys
):
    out = tmp_path / "draft"
    assert (
        main(["build", "--config", str(write_config()), "--as-of", "2024-07-04", "--out", str(out)])
        == 0
    )
    assert "Issue 2024-07-03 (week since the close of 2024-06-28)" in capsys.readouterr().out
    assert (out / "stats.json").is_file()


def test_missing_secret_with_a_real_server_is_a_config_error(write_config, capsys, monkeypatch):
    monkeypatch.delenv("NEWSLETTER_UNSUBSCRIBE_SECRET", raising=False)
    config = write_config(
        smtp={"host": "smtp.example.com", "password_env": "NL_TEST_PASSWORD", "username": "u"}
    )
    monkeypatch.setenv("NL_TEST_PASSWORD", "pw")
    assert main(["run", "--config", str(config)]) == 2
    assert one_line_error(capsys) == (
        "Error: unsubscribe secret not found: env var NEWSLETTER_UNSUBSCRIBE_SECRET is unset "
        f"(set it to a long random string, or change newsletter.unsubscribe_secret_env in {config})"
    )
    monkeypatch.delenv("NL_TEST_PASSWORD")
    assert main(["run", "--config", str(config)]) == 2
    assert one_line_error(capsys) == (
        "Error: SMTP password not found: env var NL_TEST_PASSWORD is unset "
        f"(set it, or change smtp.password_env in {config})"
    )


def test_check_config_never_prints_secrets(write_config, capsys, monkeypatch):
    monkeypatch.setenv("NL_TEST_PASSWORD", "hunter2-very-secret")
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "another-secret-value")
    config = write_config(
        smtp={"host": "smtp.example.com", "password_env": "NL_TEST_PASSWORD", "username": "u"}
    )
    assert main(["check-config", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert "another-secret-value" not in out
    assert "SMTP password: set" in out


def test_verbose_shows_the_traceback(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("smtp:\n  prot: 25\n")
    assert main(["build", "--config", str(config), "--verbose"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.strip().endswith(
        "Error: " + f"{config}: unknown key 'smtp.prot' (did you mean 'smtp.port'?)"
    )


def test_every_command_has_help():
    parser = build_parser()
    subparsers = next(
        a for a in parser._actions if isinstance(a, type(parser._subparsers._group_actions[0]))
    )
    assert set(subparsers.choices) == {
        "run",
        "build",
        "draft",
        "lint",
        "send",
        "subscribers",
        "data",
        "serve",
        "check-config",
        "approve",
        "schedule",
        "preview",
        "status",
        "db",
        "bounces",
    }

    def check(parser, name):
        assert parser.description, name
        for action in parser._actions:
            assert action.help or isinstance(action, argparse._SubParsersAction), (
                f"{name} {action.dest} has no help"
            )
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{name} {choice.dest} has no help"
                for sub_name, sub in action.choices.items():
                    check(sub, f"{name} {sub_name}")

    check(parser, "newsletter")


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys; from newsletter.cli import build_parser; build_parser(); "
        "heavy = {'pandas', 'matplotlib', 'exchange_calendars', 'pydantic'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_build_leaves_matplotlib_to_its_chart_workers():
    """The chart pool's workers import matplotlib while the parent loads the prices: the
    build's own modules do not import it (only a worker, or drawing in-process, does)."""
    code = "import sys, newsletter.app.build; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_subscribers_import_does_not_import_pandas_or_matplotlib(write_config, tmp_path):
    """An import is a database job: the market and chart libraries cost it 1.5 s and 130 MB."""
    listing = tmp_path / "readers.csv"
    listing.write_text("email,name\nada@example.com,Ada\n")
    config = write_config(subscribers={"file": None})
    command = [sys.executable, "-X", "importtime", "-m", "newsletter", "subscribers", "import"]
    result = subprocess.run(
        [*command, str(listing), "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith(f"{listing}: 1 added")
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "newsletter.db.audience" in imported  # the timing lines were read
    assert {name for name in imported if name.split(".")[0] in {"pandas", "matplotlib"}} == set()


def test_the_editor_can_override_the_headline(fast_cli, write_config, tmp_path, capsys):
    out = tmp_path / "draft"
    argv = ["build", "--config", str(write_config()), "--as-of", "2024-07-16", "--out", str(out)]
    assert main([*argv, "--subject", "Small caps <3 & rates", "--preheader", "Hand-written"]) == 0
    assert "Subject: Small caps <3 & rates" in capsys.readouterr().out
    html = (out / "email.html").read_text()
    assert "Small caps &lt;3 &amp; rates" in html
    assert "Hand-written" in html
    import json  # noqa: PLC0415

    headline = json.loads((out / "stats.json").read_text())["headline"]
    assert headline.pop("lede"), "the lede is generated whoever writes the subject"
    assert headline == {
        "subject": "Small caps <3 & rates",
        "preheader": "Hand-written",
        "rule": "editor",
    }
