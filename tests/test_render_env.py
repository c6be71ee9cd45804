"""The Jinja environment is made once per template folder, and still sees an edited template
(the preview's promise: save a template, the next page shows it)."""

from __future__ import annotations

import os

import pytest

from newsletter.errors import RenderError
from newsletter.issue.render import make_environment


def test_one_environment_per_folder_that_reloads_an_edited_template(tmp_path):
    template = tmp_path / "page.txt.j2"
    template.write_text("one {{ 1 | thousands }}\n")
    env = make_environment(tmp_path)
    assert env.get_template("page.txt.j2").render() == "one 1\n"
    assert make_environment(tmp_path / ".") is env  # compiled once, whatever the spelling
    template.write_text("two\n")
    stat = template.stat()
    os.utime(template, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert env.get_template("page.txt.j2").render() == "two\n"
    other = tmp_path / "other"
    other.mkdir()
    assert make_environment(other) is not env


def test_a_missing_template_folder_is_still_one_clear_error(tmp_path):
    with pytest.raises(RenderError, match=r"template folder .* not found"):
        make_environment(tmp_path / "gone")
