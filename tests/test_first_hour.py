"""What a new user meets in the first hour: each mistake or odd use gets one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from newsletter.cli import main

from .conftest import REPO


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (
            "schedule:\n  time: 20:26\n",
            'schedule.time: must be quoted, such as "17:30": YAML reads',
        ),
        (
            "schedule:\n  day_of_week: tue\n  time: '15:04'\n",
            "schedule: tue 15:04 runs after its own deadline",
        ),
    ],
    ids=["unquoted-time", "runs-after-its-deadline"],
)
def test_a_schedule_that_cannot_work_is_a_config_error(tmp_path, capsys, schedule, expected):
    path = tmp_path / "config.yaml"
    path.write_text(f"paths:\n  var_dir: {tmp_path / 'var'}\n{schedule}")
    code, _, err = run(capsys, "check-config", "--config", str(path))
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            "email,name\nada@example.com,Ada\nb@example.com,Bär\n".encode("latin-1"),
            "line 3: not UTF-8 text (perhaps Latin-1",
        ),
        (
            "email,name\nada@example.com,Ada\n".encode("utf-16"),
            "line 1: not UTF-8 text (it looks like UTF-16)",
        ),
        (
            b"email,name\n" + b'"' + b"x" * 140_000 + b'",Ada\n',
            "line 2: field larger than field limit",
        ),
    ],
    ids=["latin-1", "utf-16", "huge-field"],
)
def test_an_unreadable_subscriber_file_names_the_problem_and_the_line(
    write_config, tmp_path, capsys, data, expected
):
    config = write_config(subscribers={"file": None})
    listing = tmp_path / "readers.csv"
    listing.write_bytes(data)
    code, _, err = run(capsys, "subscribers", "import", str(listing), "--config", str(config))
    assert code == 1
    assert err.startswith("Error: ") and expected in err, err
    assert len(err.strip().splitlines()) == 1


def test_an_export_into_a_missing_folder_names_the_folder(write_config, tmp_path, capsys):
    config = write_config()
    target = tmp_path / "nowhere" / "readers.csv"
    code, _, err = run(capsys, "subscribers", "export", str(target), "--config", str(config))
    assert code == 1
    assert (
        err
        == f"Error: cannot write {target}: the folder {target.parent} does not exist (create it, or name another file)\n"
    )


def test_output_into_a_closed_pipe_ends_quietly(write_config):
    config = write_config()
    command = f"{sys.executable} -m newsletter schedule --list 400 --config {config} | head -1"
    done = subprocess.run(
        command, shell=True, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.startswith("Schedule: fri 17:30 America/New_York")
    assert done.stderr == ""
