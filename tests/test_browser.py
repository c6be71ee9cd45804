"""The email in a real browser: headless Chromium renders preview.html at 600 px and 375 px.

Every image must load and nothing may overflow the viewport sideways. Screenshots are saved
beside the built issue (screenshots/preview-<width>.png) for a person to look at. And the
editor's preview page, from the real preview server, works in Chromium under its policies.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import tempfile
import threading
import time
from datetime import UTC, date, datetime

import pytest

from newsletter.app.preview import DraftPreview
from newsletter.web.preview import make_preview_app
from tests.conftest import http_serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
VIRTUAL_TIME = "--virtual-time-budget=10000"
"""For pages that settle: virtual time stops while a request is pending, so a page with a
server-sent event stream open would never end it."""
HARNESS = """<!DOCTYPE html>
<html><body style="margin:0;background:#ffffff">
<iframe id="email" src="{page}" style="width:{width}px;height:{height}px;border:0;display:block"></iframe>
<script>
document.getElementById("email").addEventListener("load", () => {{
  const frame = document.getElementById("email");
  const doc = frame.contentDocument;
  const images = [...doc.images].map(img => {{
    const box = img.getBoundingClientRect();
    return {{src: img.getAttribute("src"), ok: img.complete && img.naturalWidth > 0, left: box.left, right: box.right, width: box.width}};
  }});
  const sizes = [...doc.body.querySelectorAll("*")]
    .filter(el => el.offsetParent !== null && [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()))
    .map(el => parseFloat(frame.contentWindow.getComputedStyle(el).fontSize));
  const result = {{images, smallestText: Math.min(...sizes), scrollWidth: doc.documentElement.scrollWidth, viewport: frame.contentWindow.innerWidth}};
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
}});
</script>
</body></html>
"""
"""The page in an iframe of the exact width: desktop Chromium will not make a window narrower
than about 500 px, but an iframe's viewport is as narrow as it is set."""
HEIGHT = 5200


def chromium(*args: str, timing: str = VIRTUAL_TIME) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                CHROMIUM,
                *FLAGS,
                timing,
                "--allow-file-access-from-files",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    return result.stdout


def _check_in_browser(folder, page: str, width: int, shot_name: str, *flags: str) -> dict:
    """Load `page` of `folder` at `width` CSS px; the check script's result, with a screenshot
    saved as screenshots/<shot_name>.png for a person to look at."""
    harness = folder / f"browser-check-{shot_name}.html"
    harness.write_text(HARNESS.format(width=width, height=HEIGHT, page=page))
    try:
        size = f"--window-size={max(width, 600)},{HEIGHT}"
        dom = chromium(size, *flags, "--dump-dom", harness.as_uri())
        shots = folder / "screenshots"
        shots.mkdir(exist_ok=True)
        shot = shots / f"{shot_name}.png"
        chromium(size, *flags, f"--screenshot={shot}", harness.as_uri())
    finally:
        harness.unlink()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', dom, re.S)
    assert found, "the check script did not run"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def _assert_fits(result: dict, width: int, images: int) -> None:
    assert result["viewport"] == width
    assert len(result["images"]) == images
    assert [image["src"] for image in result["images"] if not image["ok"]] == []
    assert result["scrollWidth"] <= width, result
    for image in result["images"]:  # inside the column, its padding clear on both sides
        assert image["left"] >= 8 and image["right"] <= width - 8, image
    assert result["smallestText"] >= 12, result


@pytest.mark.parametrize("width", [600, 375])
def test_preview_renders_with_every_image_and_no_sideways_scroll(build_day, width):
    folder = build_day("2024-07-17").folder
    result = _check_in_browser(folder, "preview.html", width, f"preview-{width}")
    _assert_fits(result, width, images=5)
    if width == 375:
        assert all(image["width"] <= 343 + 0.5 for image in result["images"]), result


@pytest.mark.parametrize(
    ("flag", "name"),
    [
        ("--force-dark-mode", "dark-scheme"),
        ("--blink-settings=forceDarkModeEnabled=true", "dark-forced"),
    ],
)
def test_dark_mode_keeps_the_layout(build_day, flag, name):
    """A client that asks for dark (the page's own dark colours) and one that forces it
    (Chromium's automatic darkening, as Gmail's apps do): the same fit at 375 px."""
    folder = build_day("2025-02-20").folder
    _assert_fits(
        _check_in_browser(folder, "preview.html", 375, f"preview-375-{name}", flag), 375, 5
    )


def test_a_client_that_drops_the_style_block_still_fits_a_phone(build_day):
    """Some clients strip <style>: the inlined styles alone must keep the column fluid."""
    folder = build_day("2024-07-17").folder
    page = (folder / "preview.html").read_text()
    bare = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    assert "<style>" not in bare and "@media" not in bare
    (folder / "preview-unstyled.html").write_text(bare)
    try:
        result = _check_in_browser(folder, "preview-unstyled.html", 375, "preview-375-unstyled")
    finally:
        (folder / "preview-unstyled.html").unlink()
    _assert_fits(result, 375, images=5)


def test_the_preview_page_works_in_chromium_under_its_policies(
    write_config, market, charts, caplog
):
    """The preview from the real server: the page's nonce script runs (asked for the phone
    width, it presses the Phone button and narrows the frame), the framed email and its charts load (the draft allows framing by the preview
    itself), and the page opens the live-reload stream (connect-src 'self')."""
    caplog.set_level(logging.INFO, logger="newsletter.web.http")
    july_19 = date(2024, 7, 19)
    draft = DraftPreview(write_config(), july_19, market=market.at(july_19), charts=charts)
    stop = threading.Event()
    app = make_preview_app(draft, stop, lambda: datetime.now(UTC), "127.0.0.1")
    with http_serving(app, on_stop=stop.set) as url:
        # --timeout ends the load if it hangs; the DOM is dumped once the page (frame included)
        # has loaded
        dom = chromium("--dump-dom", f"{url}/?width=phone", timing="--timeout=30000")
        requests = _requests_seen(caplog, until='"GET /events" 200')
    assert re.search(r'<button [^>]*id="phone"[^>]*aria-pressed="true"', dom), dom[:2000]
    assert re.search(r'<iframe id="email" [^>]*class="phone"', dom), dom[:2000]
    assert '"GET /draft/preview.html" 200' in requests
    charts_loaded = [
        line for line in requests if re.search(r"GET /draft/[a-z0-9_-]+[.]png. 200", line)
    ]
    assert len(charts_loaded) == 5, requests
    assert '"GET /events" 200' in requests


def _requests_seen(caplog, until: str) -> list[str]:
    """The access log's requests, once one matching `until` is in (at most 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        lines = [
            re.sub(r"^127.0.0.1 | [0-9.]+ ms$", "", r.getMessage())
            for r in caplog.records
            if r.name == "newsletter.web.http"
        ]
        if until in lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)
