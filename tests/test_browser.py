"""The email in a real browser: headless Chromium renders preview.html at 600 px and 375 px.

Every image must load and nothing may overflow the viewport sideways. Screenshots are saved
beside the built issue (screenshots/preview-<width>.png) for a person to look at.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile

import pytest

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
    "--virtual-time-budget=10000",
]
HARNESS = """<!DOCTYPE html>
<html><body style="margin:0;background:#ffffff">
<iframe id="email" src="preview.html" style="width:{width}px;height:{height}px;border:0;display:block"></iframe>
<script>
document.getElementById("email").addEventListener("load", () => {{
  const frame = document.getElementById("email");
  const doc = frame.contentDocument;
  const images = [...doc.images].map(img => ({{src: img.getAttribute("src"), ok: img.complete && img.naturalWidth > 0}}));
  const result = {{images, scrollWidth: doc.documentElement.scrollWidth, viewport: frame.contentWindow.innerWidth}};
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


def chromium(*args: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                CHROMIUM,
                *FLAGS,
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


@pytest.mark.parametrize("width", [600, 375])
def test_preview_renders_with_every_image_and_no_sideways_scroll(build_day, width):
    folder = build_day("2024-07-17").folder
    harness = folder / f"browser-check-{width}.html"
    harness.write_text(HARNESS.format(width=width, height=HEIGHT))
    try:
        dom = chromium(f"--window-size={max(width, 600)},{HEIGHT}", "--dump-dom", harness.as_uri())
        shots = folder / "screenshots"
        shots.mkdir(exist_ok=True)
        shot = shots / f"preview-{width}.png"
        chromium(
            f"--window-size={max(width, 600)},{HEIGHT}", f"--screenshot={shot}", harness.as_uri()
        )
    finally:
        harness.unlink()
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', dom, re.S)
    assert found, "the check script did not run"
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["viewport"] == width
    assert len(result["images"]) == 5
    assert [image["src"] for image in result["images"] if not image["ok"]] == []
    assert result["scrollWidth"] <= width, result
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
