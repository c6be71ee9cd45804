"""Inputs that would make the SMTP server refuse a message, or leak a secret, stop early.

The subject and preheader (generated, from the flags or from the notes file) fit a message;
the config's addresses and base URL are ones a message can carry; check-config and config errors
never print a password; a config nested too deeply is a config error, not a crash.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from newsletter.cli import main
from newsletter.config import Config, load_config
from newsletter.errors import ConfigError, ContentError
from newsletter.issue.headline import MAX_TEXT, check_text, text_problem
from newsletter.issue.notes import parse_notes

AS_OF = "2024-07-17"
LONG_OK = ("Small caps — the café rally é " * 8)[:200]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


# --- the subject and preheader: the rule as a pure function --------------------------------


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        pytest.param("Small caps' best week since 1987", "subject", None, id="plain"),
        pytest.param(LONG_OK, "subject", None, id="200-chars-non-ascii"),
        pytest.param("x" * MAX_TEXT, "subject", None, id="exactly-250"),
        pytest.param("Ünïcode\u00a0non-breaking — fine", "preheader", None, id="nbsp-is-text"),
        pytest.param(
            "x" * 251,
            "subject",
            ("is 251 characters, over the 250 that fit a mail header", "shorten it"),
            id="251-subject",
        ),
        pytest.param(
            "y" * 312,
            "preheader",
            ("is 312 characters, over the 250 a preheader may have", "shorten it"),
            id="312-preheader",
        ),
        *(
            pytest.param(
                f"ab{char}c",
                "subject",
                (f"contains a control character (U+{ord(char):04X}) at position 3", "remove it"),
                id=name,
            )
            for name, char in [
                ("NUL", "\x00"),
                ("TAB", "\t"),
                ("LF", "\n"),
                ("VT", "\x0b"),
                ("FF", "\x0c"),
                ("CR", "\r"),
                ("ESC", "\x1b"),
                ("US", "\x1f"),
                ("DEL", "\x7f"),
                ("C1-PAD", "\x80"),
                ("NEL", "\x85"),
                ("C1-APC", "\x9f"),
            ]
        ),
        pytest.param(
            "\x1b" + "z" * 300,
            "subject",
            ("contains a control character (U+001B) at position 1", "remove it"),
            id="control-reported-before-length",
        ),
    ],
)
def test_text_problem(text, field, expected):
    assert text_problem(text, field) == expected


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        pytest.param(
            "Small caps \x1b[31m",
            {},
            "the --subject contains a control character (U+001B) at position 12; remove it",
            id="editor-fix",
        ),
        pytest.param(
            "w" * 260,
            {"fix": "give one with --subject"},
            "the --subject is 260 characters, over the 250 that fit a mail header; "
            "give one with --subject",
            id="given-fix",
        ),
    ],
)
def test_check_text_raises_one_line(text, kwargs, message):
    with pytest.raises(ContentError) as caught:
        check_text(text, "subject", "the --subject", **kwargs)
    assert str(caught.value) == message
    assert check_text("fine", "subject", "the --subject") == "fine"


@pytest.mark.parametrize(
    ("line", "subject"),
    [
        pytest.param("Subject: a\x0bb", "a\x0bb", id="VT-kept"),
        pytest.param("Subject: a\x0cb", "a\x0cb", id="FF-kept"),
        pytest.param("Subject: a\x85b", "a\x85b", id="NEL-kept"),
        pytest.param("Subject: a\x1bb", "a\x1bb", id="ESC-kept"),
        pytest.param("Subject:  trimmed\t ", "trimmed", id="edge-whitespace-trimmed"),
    ],
)
def test_notes_keep_a_control_character_in_its_field(line, subject):
    """A notes line ends only at a line break, so the build sees (and refuses) what was typed."""
    for ending in ("\n", "\r\n"):
        notes = parse_notes(ending.join([line, "Preheader: p", "---", "Body"]) + ending)
        assert (notes.subject, notes.preheader, notes.markdown) == (subject, "p", "Body")


# --- the subject and preheader through `newsletter build` ----------------------------------


def _build(config: Path, *extra: str) -> int:
    return main(["build", "--config", str(config), "--as-of", AS_OF, "--quiet", *extra])


def _notes(config: Path) -> Path:
    path = config.resolve().parent / "issues" / AS_OF / "notes.md"
    path.parent.mkdir(parents=True)
    return path


@pytest.mark.parametrize(
    ("flags", "notes", "message"),
    [
        pytest.param(
            ["--subject", "Small caps \x1b[31m red"],
            None,
            "the --subject contains a control character (U+001B) at position 12; remove it",
            id="flag-escape",
        ),
        pytest.param(
            [],
            f"Subject: {'s' * 312}\n---\nNote.\n",
            "the subject from {notes} is 312 characters, over the 250 that fit a mail header; "
            "shorten it",
            id="notes-subject-too-long",
        ),
        pytest.param(
            ["--subject", "The flag's words win"],
            "Subject: ignored\nPreheader: What moved\x0b and what to watch\n---\n",
            "the preheader from {notes} contains a control character (U+000B) at position 11; "
            "remove it",
            id="notes-preheader-vertical-tab",
        ),
    ],
)
def test_build_refuses_words_a_message_cannot_carry(
    fast_cli, write_config, capsys, flags, notes, message
):
    config = write_config()
    path = _notes(config)
    if notes is not None:
        path.write_text(notes, encoding="utf-8")
    assert _build(config, *flags) == 1
    assert one_line_error(capsys) == "Error: " + message.format(notes=path)
    assert not (config.parent / "var" / "issues" / AS_OF / "stats.json").exists()


def test_a_long_non_ascii_subject_and_preheader_still_build(
    fast_cli, write_config, tmp_path, capsys
):
    config = write_config()
    _notes(config).write_text(f"Preheader: {LONG_OK[::-1]}\n---\n", encoding="utf-8")
    out = tmp_path / "out"
    assert _build(config, "--subject", LONG_OK, "--out", str(out)) == 0
    headline = json.loads((out / "stats.json").read_text())["headline"]
    headline.pop("lede")
    assert headline == {"subject": LONG_OK, "preheader": LONG_OK[::-1], "rule": "editor"}
    assert f"Subject: {LONG_OK}" in capsys.readouterr().out


# --- the config: addresses and the base URL -------------------------------------------------

BAD_CONFIG = [
    pytest.param(
        "newsletter",
        "from_address",
        "Rotation Digest digest@example.com",
        "must be 'Name <address>' or a bare address, such as "
        "'Rotation Digest <digest@example.com>'",
        id="from-name-without-brackets",
    ),
    pytest.param(
        "newsletter",
        "from_address",
        "digest@localhost",
        "must be a valid email address (The part after the @-sign is not valid. It should "
        "have a period.)",
        id="from-no-dot-in-domain",
    ),
    pytest.param(
        "newsletter",
        "from_address",
        "Digest <digest@@example.com>",
        "must be a valid email address 'digest@@example.com' (The part after the @-sign "
        "contains invalid characters: '@'.)",
        id="from-two-at-signs",
    ),
    pytest.param(
        "newsletter",
        "from_address",
        "a@example.com, b@example.com",
        "must be one address such as 'Rotation Digest <digest@example.com>' (quote a display "
        'name with a comma: "Digest, The" <...>)',
        id="from-two-addresses",
    ),
    pytest.param(
        "newsletter",
        "from_address",
        "Digest, The <digest@example.com>",
        "must be one address such as 'Rotation Digest <digest@example.com>' (quote a display "
        'name with a comma: "Digest, The" <...>)',
        id="from-unquoted-comma",
    ),
    pytest.param(
        "newsletter",
        "from_address",
        "Digest <digest@example.com",
        "must be 'Name <address>' or a bare address, such as "
        "'Rotation Digest <digest@example.com>'",
        id="from-unclosed-bracket",
    ),
    pytest.param(
        "newsletter",
        "from_address",
        "Digest\r\nBcc: x@example.com <digest@example.com>",
        "must be one line without control characters (it goes into a mail header)",
        id="from-header-injection",
    ),
    pytest.param(
        "newsletter",
        "from_address",
        "digest@exämple.com",
        "the address must be ASCII: write 'digest@exämple.com' as "
        "'digest@xn--exmple-cua.com' (the domain's xn-- form)",
        id="from-idn-domain",
    ),
    pytest.param(
        "newsletter",
        "reply_to",
        "the editor",
        "must be 'Name <address>' or a bare address, such as 'Editor <editor@example.com>'",
        id="reply-to-not-an-address",
    ),
    pytest.param(
        "newsletter",
        "unsubscribe_mailto",
        "Unsubscribe <unsubscribe@example.com>",
        "must be a bare address such as unsubscribe@example.com (no display name, no <>)",
        id="mailto-with-display-name",
    ),
    pytest.param(
        "newsletter",
        "unsubscribe_mailto",
        "unsubscribe?x@example.com",
        "must not contain ?: it would break the mailto: link of List-Unsubscribe; use an "
        "address such as unsubscribe@example.com",
        id="mailto-question-mark",
    ),
    pytest.param(
        "schedule",
        "editor_email",
        "Editor <ed@example.com>",
        "must be a bare address such as editor@example.com (no display name, no <>)",
        id="editor-email-with-name",
    ),
    pytest.param(
        "schedule",
        "editor_email",
        "ed@example",
        "must be a valid email address (The part after the @-sign is not valid. It should "
        "have a period.)",
        id="editor-email-invalid",
    ),
    pytest.param(
        "newsletter",
        "base_url",
        "http://digest.example.com",
        "must be an absolute https:// URL with a host, such as https://digest.example.com",
        id="base-url-http",
    ),
    pytest.param(
        "newsletter",
        "base_url",
        "https:///issues",
        "must be an absolute https:// URL with a host, such as https://digest.example.com",
        id="base-url-no-host",
    ),
    pytest.param(
        "newsletter",
        "base_url",
        "https://digest.example.com/rotation digest",
        "must be a URL without spaces or control characters",
        id="base-url-space",
    ),
    pytest.param(
        "newsletter",
        "base_url",
        "https://digest.example.com\t",
        "must be a URL without spaces or control characters",
        id="base-url-tab",
    ),
    pytest.param(
        "newsletter",
        "base_url",
        "https://digest.example.com:https",
        "must be an absolute https:// URL (Port could not be cast to integer value as 'https')",
        id="base-url-bad-port",
    ),
    pytest.param(
        "newsletter",
        "base_url",
        "https://user:pw@digest.example.com",
        "must not carry a user or password (every email would show it)",
        id="base-url-credentials",
    ),
    pytest.param(
        "newsletter",
        "base_url",
        "https://digest.example.com/?ref=mail",
        "must not have a ?query or #fragment (the links' paths are appended to it)",
        id="base-url-query",
    ),
]


@pytest.mark.parametrize(("section", "key", "value", "message"), BAD_CONFIG)
def test_check_config_refuses_what_a_message_cannot_carry(
    write_config, capsys, section, key, value, message
):
    config = write_config(**{section: {key: value}})
    assert main(["check-config", "--config", str(config)]) == 2
    assert one_line_error(capsys) == f"Error: {config}: {section}.{key}: {message}, got {value!r}"


@pytest.mark.parametrize(
    ("section", "values"),
    [
        pytest.param(
            "newsletter",
            {"from_address": '"Digest, The" <digest@example.com>', "reply_to": "ed@example.com"},
            id="quoted-comma-and-bare-reply-to",
        ),
        pytest.param(
            "newsletter",
            {"from_address": "Café Digest — Weekly <digest@example.com>", "reply_to": ""},
            id="non-ascii-display-name",
        ),
        pytest.param("newsletter", {"from_address": "<digest@example.com>"}, id="angle-only"),
        pytest.param("newsletter", {"base_url": "https://example.com:8443/digest/"}, id="path"),
        pytest.param(
            "schedule",
            {"require_approval": True, "editor_email": "ed@example.com"},
            id="editor-email",
        ),
    ],
)
def test_good_addresses_and_urls_load(write_config, section, values):
    config = load_config(write_config(**{section: values}))
    for key, value in values.items():
        loaded = getattr(getattr(config, section), key)
        assert loaded == (value.rstrip("/") if key == "base_url" else value)


# --- secrets: never printed ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param(
            "postgresql://digest:s3cr3t-pw@db.example.com/digest",
            "postgresql://digest:***@db.example.com/digest",
            id="user-password",
        ),
        pytest.param(
            "postgresql+psycopg://digest:s3cr3t@pw:x/y@db.example.com:5432/digest",
            "postgresql+psycopg://digest:***@db.example.com:5432/digest",
            id="unescaped-at-colon-slash",
        ),
        pytest.param(
            "postgresql://:s3cr3t-pw@db.example.com/digest",
            "postgresql://:***@db.example.com/digest",
            id="password-only",
        ),
        pytest.param(
            "postgresql://db.example.com/digest?sslmode=require&password=s3cr3t-pw",
            "postgresql://db.example.com/digest?sslmode=require&password=***",
            id="query-password",
        ),
        pytest.param(
            "mysql://digest@db.example.com/digest",
            "mysql://digest@db.example.com/digest",
            id="no-password",
        ),
    ],
)
def test_check_config_masks_the_database_password(write_config, capsys, url, shown):
    config = write_config(database={"url": url})
    assert main(["check-config", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    printed = json.loads(out[out.index("{") : out.rindex("}") + 1])
    assert printed["database"]["url"] == shown
    assert "s3cr3t" not in out
    loaded = load_config(config)
    assert "s3cr3t" not in repr(loaded)
    assert loaded.database_url == url  # the engine still gets the real URL


def test_a_bad_database_url_is_quoted_without_its_password(write_config, capsys):
    config = write_config(database={"url": "postgresql:digest:s3cr3t-pw@db.example.com"})
    assert main(["check-config", "--config", str(config)]) == 2
    assert one_line_error(capsys) == (
        f"Error: {config}: database.url: must be a database URL such as "
        "sqlite:///var/newsletter.db, got 'postgresql:***@db.example.com'"
    )


def test_every_json_dump_of_the_config_masks_the_password():
    config = Config.model_validate({"database": {"url": "postgresql://u:hunter2@h/d"}})
    assert "hunter2" not in config.model_dump_json()
    assert "hunter2" not in config.database.model_dump_json()
    assert "hunter2" not in repr(config)
    assert config.model_dump()["database"]["url"] == "postgresql://u:hunter2@h/d"


# --- a config nested too deeply --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[" * 100_000, id="unclosed-brackets"),
        pytest.param("[" * 3000 + "]" * 3000, id="closed-brackets"),
        pytest.param("newsletter:\n  name: " + "{a: " * 3000 + "1" + "}" * 3000, id="mappings"),
        pytest.param("- " * 3000 + "x", id="block-sequences"),
    ],
)
def test_a_config_nested_too_deeply_is_a_config_error(tmp_path, capsys, text):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    message = (
        f"{config}: the document is nested too deeply to read (hundreds of levels of brackets "
        "or indentation); a config file needs only sections and their keys"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert str(caught.value) == message
    assert main(["check-config", "--config", str(config)]) == 2
    assert one_line_error(capsys) == f"Error: {message}"


def test_a_huge_or_deep_bad_value_is_quoted_in_one_short_line(write_config, capsys):
    value = [[[[["SPY"]]]]] * 50
    config = write_config(stats={"scoreboard": value})
    raw = yaml.safe_load(config.read_text())
    assert raw["stats"]["scoreboard"] == value
    assert main(["check-config", "--config", str(config)]) == 2
    err = one_line_error(capsys)
    assert err.startswith(f"Error: {config}: stats.scoreboard.0: ")
    assert len(err) < 400


def test_generated_words_over_the_limit_name_the_flags_and_the_notes_line(monkeypatch):
    """The rules' own words are checked too: a bug there says how the editor can step in."""
    from newsletter.app import build  # noqa: PLC0415
    from newsletter.app.build import BuildOptions  # noqa: PLC0415
    from newsletter.issue.headline import Headline  # noqa: PLC0415
    from newsletter.issue.notes import EditorNotes  # noqa: PLC0415

    def too_long(stats, *, subject=None, preheader=None):
        return Headline(subject or "Fine", preheader or "p" * 251, "scoreboard")

    monkeypatch.setattr(build, "write_headline", too_long)
    notes = Path("issues") / AS_OF / "notes.md"
    with pytest.raises(ContentError) as caught:
        build._headline(None, BuildOptions(subject="Mine"), EditorNotes(), notes)
    assert str(caught.value) == (
        "the generated preheader is 251 characters, over the 250 a preheader may have; give "
        f"one with --preheader or a Preheader: line in {notes}"
    )
