"""How quickly `newsletter preview` shows an edit: the first build, then for each of N edits of
the notes file the time until the live-reload event arrives and until the next GET / returns
the rebuilt draft; and how long an unchanged GET / takes.

Run by hand from the project folder with the venv active:  python benchmarks/preview.py [--edits N]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, date, datetime
from pathlib import Path

from newsletter.app.preview import DraftPreview
from newsletter.web.preview import make_preview_app
from newsletter.web.server import Server, listen, server_config

REPO = Path(__file__).resolve().parent.parent


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.read().decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--as-of", default="2024-07-19")
    parser.add_argument("--edits", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = root / "config.yaml"
        config.write_text(
            f"templates:\n  dir: {REPO / 'templates'}\npaths:\n  var_dir: {root / 'var'}\n"
        )
        preview = DraftPreview(config, date.fromisoformat(args.as_of))
        stop = threading.Event()
        app = make_preview_app(preview, stop, lambda: datetime.now(UTC), "127.0.0.1")
        server = Server(server_config(app), on_stop=stop.set)
        sock = listen("127.0.0.1", 0)
        port = sock.getsockname()[1]
        serving = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
        serving.start()
        url = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        fetch(f"{url}/")
        first = time.perf_counter() - started
        threading.Thread(target=preview.watch, args=(stop,), daemon=True).start()
        notes = root / "issues" / args.as_of / "notes.md"
        notes.parent.mkdir(parents=True)
        event_s, page_s = [], []
        for edit in range(1, args.edits + 1):
            events = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            events.request("GET", "/events")
            stream = events.getresponse()
            started = time.perf_counter()
            notes.write_text(f"Edit number {edit}.\n")
            stream.readline()
            event_s.append(time.perf_counter() - started)
            events.close()
            page = fetch(f"{url}/")
            page_s.append(time.perf_counter() - started)
            assert f"Edit number {edit}." in fetch(f"{url}/draft/preview.html")
            assert "build " in page
            print(
                f"edit {edit}: event after {event_s[-1] * 1000:.0f} ms, page after {page_s[-1]:.2f} s"
            )
        unchanged = []
        for _ in range(5):
            started = time.perf_counter()
            fetch(f"{url}/")
            unchanged.append(time.perf_counter() - started)
        server.should_exit = True
        serving.join()
    print(f"first build and page: {first:.2f} s")
    print(
        f"edit -> reload event: median {statistics.median(event_s) * 1000:.0f} ms "
        f"(max {max(event_s) * 1000:.0f} ms); edit -> rebuilt page: median "
        f"{statistics.median(page_s):.2f} s (max {max(page_s):.2f} s), {args.edits} edits"
    )
    print(f"unchanged GET /: median {statistics.median(unchanged) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
