"""The README's quickstart, then its editor's week for the next issue, as a new user types them:
every command succeeds, the next issue reaches a real send through the built-in capture
server, and each issue's state is in view. (That a quickstart message's unsubscribe link works
against `newsletter serve` with no variable set: tests/test_audience.py.)"""

from __future__ import annotations

import re
import shlex
from email import message_from_bytes
from email.policy import default as default_policy

import pytest

from newsletter.cli import main
from tests.conftest import REPO

NOTE = "Small caps gave back a little.\n"


def readme_commands() -> list[str]:
    """The command lines of the README's editor's week block, comments dropped."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("## The editor's week", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


@pytest.fixture
def project(tmp_path, monkeypatch, fast_cli):
    """A fresh checkout's layout (config.yaml, templates, the sample list) as the working
    folder; builds reuse the session's loaded prices and drawn charts."""
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    (tmp_path / "templates").symlink_to(REPO / "templates")
    (tmp_path / "newsletter").symlink_to(REPO / "newsletter")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEWSLETTER_UNSUBSCRIBE_SECRET", raising=False)
    return tmp_path


def _outbox(project):
    return sorted((project / "var" / "outbox" / "new").iterdir())


def test_the_quickstart_then_the_editors_week_reach_a_real_send(project, capsys):
    assert main(["run", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "As of 2025-09-26: the last session at which IWM, SPY and ^GSPC have closes"
    )
    assert "Next steps:" in out and "newsletter serve" in out
    assert "`newsletter draft --as-of 2025-09-19`" in out  # the week the README's block takes
    first = _outbox(project)
    assert len(first) == 5
    commands = readme_commands()
    assert [c.split()[1] for c in commands if c.startswith("newsletter")] == [
        "draft",
        "preview",
        "send",
        "approve",
        "send",
        "status",
    ]
    for command in commands:
        words = shlex.split(command)
        if words[0] == "$EDITOR":
            notes = project / words[1]
            assert "<!--" in notes.read_text()  # the draft made it from the template
            notes.write_text(NOTE)
            continue
        if words[1] == "preview":  # a server the editor leaves open: tests/test_preview.py
            continue
        assert main([*words[1:]]) == 0, command
        out = capsys.readouterr().out
        if words[1] in ("draft", "approve") or "--test" in words:
            assert "  State:   " in out, command
    for day in ("2025-09-19", "2025-09-26"):  # "at T", or "from T1 to T2" across a minute
        assert re.search(rf"^{day}  sent: to 5 of 5 reader\(s\) (at|from) ", out, re.M), out
    messages = [message_from_bytes(p.read_bytes(), policy=default_policy) for p in _outbox(project)]
    subjects = [str(m["Subject"]) for m in messages]
    assert len(messages) == 11  # 5 from the quickstart, the editor's test copy, 5 of the next
    assert sum(s.startswith("[TEST]") for s in subjects) == 1
    week = next(s for s in subjects if s.startswith("[TEST]")).removeprefix("[TEST] ")
    assert sum(s.endswith(week) for s in subjects) == 6  # the test copy and five readers'
    assert all(
        NOTE.strip() in m.get_body(("plain",)).get_content()
        for m in messages
        if str(m["Subject"]).endswith(week)
    )
