"""The editor's notes file: header fields, the Markdown, the draft command."""

from __future__ import annotations

from newsletter.cli import main
from newsletter.issue.notes import EditorNotes, parse_notes


def test_header_fields_and_markdown_are_split():
    text = "Subject: Small caps run\nPreheader:\n---\nHello **readers**.\n"
    assert parse_notes(text) == EditorNotes(
        markdown="Hello **readers**.", subject="Small caps run", preheader=None
    )
    assert parse_notes("Just a note.\n") == EditorNotes(markdown="Just a note.")


def test_draft_creates_the_template_once_and_build_uses_it(
    fast_cli, write_config, tmp_path, capsys
):
    config = write_config()
    assert main(["draft", "--config", str(config), "--as-of", "2024-07-17"]) == 0
    path = tmp_path / "issues" / "2024-07-17" / "notes.md"
    assert capsys.readouterr().out == (
        f"Created: {path} (write the note, then `newsletter build`)\n"
        f"  State:   drafted: {path}; not built yet\n"
    )
    out = tmp_path / "draft"  # (an untouched draft mails no note: the test below)
    path.write_text(
        "Subject: Small caps, big week\n---\nThe rotation arrived. [Read](https://example.com/r)\n"
    )
    assert main(["draft", "--config", str(config), "--as-of", "2024-07-17"]) == 0
    assert capsys.readouterr().out.startswith("Already there:")
    assert main(["build", "--config", str(config), "--as-of", "2024-07-17", "--out", str(out)]) == 0
    assert "Subject: Small caps, big week" in capsys.readouterr().out
    html = (out / "email.html").read_text()
    assert "From the editor" in html and 'href="https://example.com/r"' in html
    assert "The rotation arrived." in (out / "email.txt").read_text()


def test_an_untouched_draft_has_no_note_in_either_part(write_config, prepare):
    from datetime import date  # noqa: PLC0415

    from newsletter.app.drafts import start_draft  # noqa: PLC0415
    from newsletter.config import load_config  # noqa: PLC0415

    config = load_config(write_config())
    start_draft(config, date(2024, 7, 17))
    built = prepare(config, date(2024, 7, 17)).built
    assert "FROM THE EDITOR" not in built.rendered.text
    assert "From the editor" not in built.rendered.html
