"""Shared fixtures: a real SMTP server on 127.0.0.1, config files in tmp_path, raw snapshot reads."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import gzip
import hashlib
import os
import pickle
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.message import Message
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller

from newsletter.app.build import ChartCache, Prepared, build_issue
from newsletter.app.built import BuiltIssue
from newsletter.app.data import Market, load_market
from newsletter.config import Config, load_config
from newsletter.delivery.capture import free_loopback_port
from newsletter.models import Chart
from tests import postgres

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = REPO / "newsletter" / "data" / "market"


@dataclass
class RecordingHandler:
    """Accepts every message and keeps the envelopes; refuses the addresses in `refuse`."""

    refuse: dict[str, str] = field(default_factory=dict)
    envelopes: list[Any] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@dataclass
class SmtpEndpoint:
    host: str
    port: int
    handler: RecordingHandler

    @property
    def envelopes(self) -> list[Any]:
        return self.handler.envelopes


@contextmanager
def serving(handler: Any, port: int | None = None, **options: Any) -> Iterator[int]:
    """Run an aiosmtpd server with `handler` on `port` (default: a free 127.0.0.1 port);
    yields the port."""
    port = port or free_loopback_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, loop=asyncio.new_event_loop(), **options
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
        controller.loop.close()


@contextmanager
def http_serving(app: Any, on_stop: Callable[[], None] | None = None) -> Iterator[str]:
    """Serve the ASGI `app` with the product's uvicorn settings on a free 127.0.0.1 port from a
    thread; yields its base URL. The socket listens before the thread starts, so a request
    made at once waits in the backlog; leaving stops the server (`on_stop` is called first)."""
    from newsletter.web.server import Server, listen, server_config  # noqa: PLC0415

    sock = listen("127.0.0.1", 0)
    server = Server(server_config(app), on_stop=on_stop)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        assert not thread.is_alive(), "the server did not stop"


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: Message
    """Case-insensitive, as HTTP header names are (uvicorn sends them in lower case)."""
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    @property
    def content_type(self) -> str:
        return self.headers["Content-Type"]


def http_request(url: str, data: bytes | None = None) -> HttpReply:
    """GET (or POST `data` to) `url`; an HTTP error status is a reply, not an exception."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=120) as reply:
            return HttpReply(reply.status, reply.headers, reply.read())
    except urllib.error.HTTPError as err:
        return HttpReply(err.code, err.headers, err.read())


class Links(HTMLParser):
    """The link targets and image sources of an HTML page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(str(values["href"]))
        if tag == "img":
            self.images.append(str(values["src"]))


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest) -> Iterator[SmtpEndpoint]:
    """A real aiosmtpd server on loopback; `@pytest.mark.smtp_refuse({...})` sets refusals."""
    marker = request.node.get_closest_marker("smtp_refuse")
    handler = RecordingHandler(refuse=dict(marker.args[0]) if marker else {})
    with serving(handler) as port:
        yield SmtpEndpoint("127.0.0.1", port, handler)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a config.yaml in tmp_path: the shipped defaults with `sections` merged over them."""

    def write(**sections: dict[str, Any]) -> Path:
        raw = yaml.safe_load((REPO / "config.yaml").read_text())
        raw["templates"]["dir"] = str(REPO / "templates")
        raw["subscribers"]["file"] = str(REPO / "newsletter" / "data" / "sample_subscribers.csv")
        raw["paths"]["var_dir"] = str(tmp_path / "var")
        for name, values in sections.items():
            raw.setdefault(name, {}).update(values)
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    return write


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str | None]:
    """A PostgreSQL server for this test worker (tests/postgres.py); None where it is missing."""
    if postgres.binaries() is None:
        yield None
        return
    with postgres.server() as url:
        yield url


ON_POSTGRESQL = pytest.param("postgresql", marks=pytest.mark.xdist_group("postgresql"))
"""The PostgreSQL variant of a test: every one runs in the same worker, so one server starts."""
both_databases = pytest.mark.parametrize("database_url", ["sqlite", ON_POSTGRESQL], indirect=True)
"""Run a test of the store, the ledger or concurrency on SQLite and on PostgreSQL."""


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The test's database: None is the default SQLite file under var/, else (with
    `both_databases`) the URL of a new PostgreSQL database, skipped, saying why, where
    PostgreSQL is missing. The databases the test opened are closed after it."""
    from newsletter.app.wiring import close_databases  # noqa: PLC0415

    if getattr(request, "param", "sqlite") == "sqlite":
        yield None
    else:
        server = request.getfixturevalue("postgres_server")
        if server is None:
            pytest.skip(postgres.MISSING)
        yield postgres.new_database(server)
    close_databases()


@pytest.fixture(scope="session")
def market() -> Market:
    """The bundled snapshot's prices, loaded once per test session (`market.at(day)` serves any
    week from them); only for configs that keep the shipped market and stats sections."""
    return load_market(load_config(REPO / "config.yaml"))


class SharedChartCache(ChartCache):
    """A ChartCache whose charts all test workers share through a folder: each set of numbers
    is drawn once per test session, not once per worker (the charts are deterministic: the
    same numbers give the same bytes, which tests/test_email.py checks)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(size=64)
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def charts(self, key: str, draw: Callable[[], tuple[Chart, ...]]) -> tuple[Chart, ...]:
        path = self.folder / f"{hashlib.sha256(key.encode()).hexdigest()}.pickle"
        with contextlib.suppress(FileNotFoundError):
            kept: tuple[Chart, ...] = pickle.loads(path.read_bytes())
            return super().charts(key, lambda: kept)

        def draw_and_share() -> tuple[Chart, ...]:
            drawn = draw()
            partial = path.with_suffix(f".{os.getpid()}.part")
            partial.write_bytes(pickle.dumps(drawn))
            partial.replace(path)  # atomic: a worker reads the whole file or none
            return drawn

        return super().charts(key, draw_and_share)


@pytest.fixture(scope="session")
def charts(tmp_path_factory: pytest.TempPathFactory) -> ChartCache:
    """Charts drawn once per test session for each set of numbers, shared by the workers
    (their temporary folders share a parent, which is this session's own; without workers
    the parent holds every session's folders, so the session's own folder is used: charts
    drawn by an older version of the code must never be reused)."""
    base = tmp_path_factory.getbasetemp()
    session = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return SharedChartCache(session / "shared-charts")


@pytest.fixture(scope="session")
def prepare(market: Market, charts: ChartCache) -> Callable[[Config, date], Prepared]:
    """`app.build.prepare_issue` for the snapshot provider, from the session's loaded prices and
    drawn charts: what a use case's `prepare` seam takes."""

    def prepare_from_session(config: Config, as_of: date | None) -> Prepared:
        built = build_issue(config, as_of, market=market.at(as_of), chart_cache=charts)
        return Prepared(built, None)

    return prepare_from_session


@pytest.fixture
def fast_cli(monkeypatch: pytest.MonkeyPatch, market: Market, charts: ChartCache) -> None:
    """CLI commands build from the session's loaded prices and drawn charts: for tests of what
    a command does with a build (shipped market and stats sections), not of loading prices,
    which tests/test_run.py's default run and the market tests do for real."""
    from newsletter.app import build as build_module  # noqa: PLC0415
    from newsletter.app import data as data_module  # noqa: PLC0415

    def loaded(config: Config, requested: date | None = None) -> Market:
        return market.at(requested)

    monkeypatch.setattr(build_module, "load_market", loaded)
    monkeypatch.setattr(data_module, "load_market", loaded)
    monkeypatch.setattr(
        build_module, "build_issue", functools.partial(build_issue, chart_cache=charts)
    )


@pytest.fixture
def fast_job(
    prepare: Callable[[Config, date], Prepared], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., str]:
    """The scheduler's stored job, building from the session's prices (tests/jobs.py)."""
    from tests import jobs  # noqa: PLC0415

    monkeypatch.setattr(jobs, "PREPARE", prepare)
    return jobs.scheduled_job


@pytest.fixture(scope="session")
def build_day(
    tmp_path_factory: pytest.TempPathFactory, prepare: Callable[[Config, date], Prepared]
) -> Callable[[str], BuiltIssue]:
    """Build the issue of a day once per test session (the built values are immutable)."""
    root = tmp_path_factory.mktemp("issues")
    config_path = root / "config.yaml"
    config_path.write_text(
        f"templates:\n  dir: {REPO / 'templates'}\npaths:\n  var_dir: {root / 'var'}\n"
    )
    cache: dict[str, BuiltIssue] = {}

    def build(day: str) -> BuiltIssue:
        if day not in cache:
            cache[day] = prepare(load_config(config_path), date.fromisoformat(day)).built
        return cache[day]

    return build


@pytest.fixture(scope="session")
def dkim_key() -> Any:
    """A 2048-bit RSA key (cryptography's RSAPrivateKey) for the DKIM tests, made once per
    session (about 30 ms)."""
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def newsletter_command(*argv: str) -> list[str]:
    """The `newsletter` command line for a subprocess, run by this interpreter."""
    return [sys.executable, "-m", "newsletter", *argv]


def now_utc() -> datetime:
    return datetime.now(UTC)


def read_raw_closes(ticker: str, column: str = "adj_close") -> dict[str, float]:
    """date -> close straight from the bundled gzip CSV, with no package code involved."""
    name = ticker.removeprefix("^")
    with gzip.open(SNAPSHOT / f"{name}.csv.gz", "rt", newline="") as handle:
        return {row["date"]: float(row[column]) for row in csv.DictReader(handle)}


GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked slow first: a worker that starts one last would end the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/* from the current output; review the diff before committing",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """Compare output with tests/golden/<name>, or rewrite it under --update-golden."""
    update = request.config.getoption("--update-golden")

    def check(name: str, actual: str) -> None:
        path = GOLDEN_DIR / name
        if update:
            path.write_text(actual, encoding="utf-8")
            return
        assert path.exists(), f"missing golden file {name}; run pytest --update-golden"
        expected = path.read_text(encoding="utf-8")
        assert actual == expected, (
            f"{name} changed; if intended, run pytest --update-golden and review the diff"
        )

    return check
