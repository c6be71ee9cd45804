"""How fast `newsletter send` delivers, against a naive sender and a byte-splicing floor.

Run by hand from the project folder:  python benchmarks/send.py [--subscribers 10000] [--runs 3]

Both senders deliver the real 2024-07-16 issue (with its charts) over loopback to a discarding
SMTP sink running in its own process (a minimal asyncio server written for this benchmark:
aiosmtpd would saturate a core long before the sender). The naive baseline does, per subscriber,
what a first attempt would: render the templates, inline the CSS, build the MIME message with its
images through email.message, and open a new SMTP connection. It is timed on a sample and
reported per message. The product's sender is timed on the whole list through `send_issue`
(database ledger included), `--runs` times, each on a new database. The floor is what no
sender of these messages can beat by much: one message's bytes, made once, with the address
spliced in per subscriber and sent over 4 reused connections, with no ledger and no
unsubscribe links. Peak memory (max RSS) is measured in a fresh process (`--memory-subscribers`;
0 skips it). Every figure is printed with min/median/max and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import multiprocessing
import os
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
AS_OF = date(2024, 7, 16)


async def _sink_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 sink ready\r\n")
    while line := await reader.readline():
        verb = line[:4].upper()
        if verb == b"DATA":
            writer.write(b"354 go ahead\r\n")
            await reader.readuntil(b"\r\n.\r\n")
            writer.write(b"250 discarded\r\n")
        elif verb == b"QUIT":
            writer.write(b"221 bye\r\n")
            await writer.drain()
            break
        elif verb in (b"EHLO", b"HELO"):
            writer.write(b"250-sink\r\n250 SIZE 100000000\r\n")
        else:
            writer.write(b"250 ok\r\n")
        await writer.drain()
    writer.close()


def _run_sink(port_queue: multiprocessing.Queue[int]) -> None:
    async def main() -> None:
        server = await asyncio.start_server(_sink_session, "127.0.0.1", 0, limit=2**24)
        port_queue.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


@contextlib.contextmanager
def discarding_sink() -> Iterator[int]:
    """The discarding SMTP sink in its own process; yields its port."""
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    sink = multiprocessing.Process(target=_run_sink, args=(ports,), daemon=True)
    sink.start()
    try:
        yield ports.get(timeout=30)
    finally:
        sink.kill()
        with contextlib.suppress(Exception):
            sink.join(timeout=5)


def _config(root: Path, port: int, subscribers: Path) -> Path:
    path = root / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "templates": {"dir": str(REPO / "templates")},
                "subscribers": {"file": str(subscribers)},
                "paths": {"var_dir": str(root / "var")},
                "smtp": {"host": "127.0.0.1", "port": port, "timeout_s": 30},
                "delivery": {"connections": 4},
            }
        )
    )
    return path


def _subscribers(root: Path, count: int) -> Path:
    path = root / f"subscribers-{count}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        writer.writerows([f"reader{i:06d}@example.com", f"Reader {i}"] for i in range(count))
    return path


def _clock() -> datetime:
    return datetime.now(UTC)


def measure_fast(config_path: Path) -> tuple[int, float]:
    """Send the issue to the whole list with the product's sender: (messages, seconds)."""
    from newsletter.app.build import build_issue  # noqa: PLC0415
    from newsletter.app.send import send_issue  # noqa: PLC0415
    from newsletter.config import Secrets, load_config  # noqa: PLC0415

    config = load_config(config_path)
    built = build_issue(config, AS_OF)
    started = time.perf_counter()
    result = send_issue(config, built, secrets=Secrets(unsubscribe_key=b"b" * 32), clock=_clock)
    return result.report.sent, time.perf_counter() - started


def measure_naive(config_path: Path, port: int, sample: int) -> float:
    """Seconds per message for the naive sender, over `sample` messages."""
    from newsletter.app.build import build_issue  # noqa: PLC0415
    from newsletter.app.data import load_market  # noqa: PLC0415
    from newsletter.config import load_config  # noqa: PLC0415
    from newsletter.issue.chartpool import draw_here  # noqa: PLC0415
    from newsletter.issue.headline import write_headline  # noqa: PLC0415
    from newsletter.issue.render import make_environment, render_issue  # noqa: PLC0415
    from newsletter.models import Issue  # noqa: PLC0415

    config = load_config(config_path)
    built = build_issue(config, AS_OF)
    prices = load_market(config, AS_OF).prices
    charts = draw_here(prices, built.stats, config.stats.ratio_chart_sessions)
    headline = write_headline(built.stats)
    env = make_environment(config.templates.dir)
    started = time.perf_counter()
    for i in range(sample):
        issue = Issue(
            built.stats,
            charts,
            headline.subject,
            headline.preheader,
            "Rotation Digest",
            config.newsletter.base_url,
            config.newsletter.postal_address,
        )
        rendered = render_issue(issue, env)
        message = EmailMessage()
        message["Subject"] = rendered.subject
        message["From"] = config.newsletter.from_address
        message["To"] = f"reader{i:06d}@example.com"
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        html_part = message.get_payload()[1]
        for chart in rendered.images:
            html_part.add_related(
                chart.png, maintype="image", subtype="png", cid=f"<{chart.content_id}>"
            )
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.send_message(message)
    return (time.perf_counter() - started) / sample


PEAK = (
    "import atexit, sys; atexit.register(lambda: sys.stderr.write(''.join(line for line in "
    "open('/proc/self/status') if line.startswith('VmHWM'))))"
)
"""Code a child runs first, so that it reports its own peak RSS on stderr as it exits. Not
ru_maxrss: Linux folds the parent's peak into the child's at exec (an 80 MB parent that built
an issue made a 172 MB send look like 230-268 MB); VmHWM counts only the child's own memory."""


def peak_mb(stderr: str) -> float:
    """The peak RSS, in MB, that a child started with PEAK reported on `stderr`."""
    kilobytes = [line.split()[1] for line in stderr.splitlines() if line.startswith("VmHWM:")]
    return int(kilobytes[-1]) / 1024


def peak_rss_mb(config_path: Path) -> tuple[int, float, float]:
    """Run the product's send in a fresh process: (messages, seconds, peak RSS in MB)."""
    code = (
        f"{PEAK}; sys.path.insert(0, sys.argv[2]); from benchmarks.send import measure_fast; "
        "from pathlib import Path; sent, seconds = measure_fast(Path(sys.argv[1])); "
        "print(sent, seconds)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(config_path), str(REPO)],
        capture_output=True,
        text=True,
        check=True,
    )
    sent, seconds = done.stdout.split()
    return int(sent), float(seconds), peak_mb(done.stderr)


def measure_floor(config_path: Path, port: int, count: int, connections: int = 4) -> float:
    """Messages a second for the byte splicer: one message composed once, its address
    replaced per subscriber, sent by hand (no smtplib) over `connections` reused connections,
    nothing recorded."""
    from newsletter.app.build import build_issue  # noqa: PLC0415
    from newsletter.config import load_config  # noqa: PLC0415
    from newsletter.mail.compose import MessageFactory  # noqa: PLC0415
    from newsletter.models import Subscriber  # noqa: PLC0415

    config = load_config(config_path)
    built = build_issue(config, AS_OF)
    template = MessageFactory(built.rendered, config.newsletter, _clock()).build(
        Subscriber("reader000000@example.com", ""), "<id@example.com>", "token"
    )

    def send(numbers: range) -> None:  # SMTP by hand: what a sender needs and nothing more
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            replies = sock.makefile("rb")
            replies.readline()
            sock.sendall(b"EHLO floor\r\n")
            while replies.readline()[3:4] == b"-":
                pass
            for i in numbers:
                address = f"reader{i:06d}@example.com".encode()
                data = template.replace(b"reader000000@example.com", address)
                for command in (b"MAIL FROM:<digest@example.com>", b"RCPT TO:<" + address + b">"):
                    sock.sendall(command + b"\r\n")
                    replies.readline()
                sock.sendall(b"DATA\r\n")
                replies.readline()
                sock.sendall(data + b".\r\n")  # compose's bytes need no dot-stuffing
                replies.readline()
            sock.sendall(b"QUIT\r\n")

    threads = [
        threading.Thread(target=send, args=(range(n, count, connections),))
        for n in range(connections)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return count / (time.perf_counter() - started)


def _spread(values: list[float], unit: str) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"min {low:,.0f} / median {mid:,.0f} / max {high:,.0f} {unit}"


def _load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--naive-sample", type=int, default=200)
    parser.add_argument("--memory-subscribers", type=int, default=100_000)
    args = parser.parse_args()
    with discarding_sink() as port, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        listed = _subscribers(root, args.subscribers)
        print(f"before: {_load()}")
        rates, floors, naive = [], [], []
        for run in range(args.runs):
            fast_root = root / f"fast{run}"
            fast_root.mkdir()
            sent, seconds = measure_fast(_config(fast_root, port, listed))
            rates.append(sent / seconds)
            floors.append(measure_floor(_config(fast_root, port, listed), port, args.subscribers))
            naive_root = root / f"naive{run}"
            naive_root.mkdir()
            config = _config(naive_root, port, _subscribers(naive_root, 1))
            naive.append(1 / measure_naive(config, port, args.naive_sample))
        ratio = statistics.median(rates) / statistics.median(naive)
        to_floor = statistics.median(floors) / statistics.median(rates)
        print(f"product sender: {_spread(rates, 'messages/s')} ({sent} messages, 4 connections)")
        print(f"naive sender:   {_spread(naive, 'messages/s')} (sample of {args.naive_sample})")
        print(f"byte splicer:   {_spread(floors, 'messages/s')} (the floor)")
        print(f"medians:        {ratio:.0f}x the naive sender; the floor is {to_floor:.2f}x ours")
        print(f"after:  {_load()}")
        if args.memory_subscribers:
            memory_root = root / "memory"
            memory_root.mkdir()
            count, big_seconds, rss = peak_rss_mb(
                _config(memory_root, port, _subscribers(memory_root, args.memory_subscribers))
            )
            print(
                f"{count} subscribers in a fresh process: {big_seconds:.1f} s, "
                f"{count / big_seconds:.0f} messages/s, peak RSS {rss:.0f} MB ({_load()})"
            )


if __name__ == "__main__":
    main()
