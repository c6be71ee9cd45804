"""The web commands: `serve` (the public site, in one process or several) and `preview`.

Both bind their socket here first, so a taken port is one line naming the setting to change,
and both stop on Ctrl-C or SIGTERM after the requests in progress (at most a few seconds).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.cli.common import LOG_FORMAT, load, now_utc, parse_as_of
from newsletter.errors import ConfigError

if TYPE_CHECKING:
    import argparse
    import socket

    from starlette.applications import Starlette

    from newsletter.app.site import Site
    from newsletter.config import Config, Secrets
    from newsletter.web.server import Server

SERVE_CONFIG_ENV = "NEWSLETTER_SERVE_CONFIG"
"""How `serve --workers N` tells each worker process the config file's path."""


def _listen(host: str, port: int, key: str) -> socket.socket:
    """The listening socket, or a line saying which setting to change when the port is taken."""
    from newsletter.web.server import listen  # noqa: PLC0415

    try:
        return listen(host, port)
    except OSError as err:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {err.strerror} (change {key} or --port)"
        ) from err


def _url(host: str, sock: socket.socket) -> str:
    """The address `sock` listens on, as a URL (an IPv6 address in brackets)."""
    return f"http://{f'[{host}]' if ':' in host else host}:{sock.getsockname()[1]}"


def _log_config(verbose: bool) -> dict[str, Any]:
    """The command's logging (as `main` sets it up) for uvicorn to apply in every worker:
    warnings on stderr, and with --verbose one line per request."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": {"format": LOG_FORMAT}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "line",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": "INFO" if verbose else "WARNING", "handlers": ["stderr"]},
    }


def _run(server: Server, sock: socket.socket) -> None:
    """Serve until Ctrl-C or SIGTERM (uvicorn stops gracefully on either, then raises it again)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


def _public_site(config: Config) -> tuple[Site, Secrets]:
    """The site with the secrets of the environment (and the secrets, for its notices)."""
    from newsletter.app.site import Site  # noqa: PLC0415
    from newsletter.config import resolve_secrets  # noqa: PLC0415

    secrets = resolve_secrets(config, os.environ)
    return Site.for_config(config, secrets), secrets


def _site_app(config: Config, site: Site, secrets: Secrets) -> Starlette:
    """The site's app, with signups open running the worker that sends their mails (signed
    with the site's own key)."""
    from newsletter.app.notices import NoticeWorker  # noqa: PLC0415
    from newsletter.web.site import make_site_app  # noqa: PLC0415

    if not site.signups or site.key is None:
        return make_site_app(site, now_utc)
    return make_site_app(site, now_utc, NoticeWorker(config, secrets, now_utc, site.key))


def site_app() -> Starlette:
    """One worker's public site under `serve --workers N` (uvicorn's app factory): the config
    file the parent named in NEWSLETTER_SERVE_CONFIG, the secrets of the environment."""
    from newsletter.config import load_config  # noqa: PLC0415

    config = load_config(Path(os.environ[SERVE_CONFIG_ENV]))
    return _site_app(config, *_public_site(config))


def cmd_serve(args: argparse.Namespace) -> int:
    from newsletter.web.server import Server, run_workers, server_config  # noqa: PLC0415

    config = load(args)
    site, secrets = _public_site(config)  # here first: a missing secret is one line
    host = args.host or config.web.host
    sock = _listen(host, args.port or config.web.port, "web.port")
    url = _url(host, sock)
    workers = f" in {args.workers} worker processes" if args.workers > 1 else ""
    print(f"Serving the archive on {url}/ and its feed on {url}/feed.atom{workers} (Ctrl-C stops)")
    if site.unsubscribes:
        print(f"  One-click unsubscribe on {url}/u/<token>")
    else:
        print(
            f"  One-click unsubscribe (/u/<token>) and signup are off: env var "
            f"{config.newsletter.unsubscribe_secret_env} is unset, so no link could be signed "
            "or verified (set it, then start serve again)",
            file=sys.stderr,
        )
    if site.signups:
        print(f"  Signup on {url}/signup (confirmation mails go out from here)")
    sys.stdout.flush()
    log_config = _log_config(args.verbose)
    if args.workers > 1:
        os.environ[SERVE_CONFIG_ENV] = str(args.config.resolve())
        factory = f"{__name__}:{site_app.__name__}"
        run_workers(server_config(factory, log_config=log_config, workers=args.workers), sock)
    else:
        _run(Server(server_config(_site_app(config, site, secrets), log_config=log_config)), sock)
    print("Stopped.")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from newsletter.app.preview import DraftPreview  # noqa: PLC0415
    from newsletter.web.preview import make_preview_app  # noqa: PLC0415
    from newsletter.web.server import Server, server_config  # noqa: PLC0415

    config = load(args)
    host = args.host or config.web.host
    preview = DraftPreview(args.config, parse_as_of(args.as_of))
    stop = threading.Event()
    sock = _listen(host, args.port or config.web.preview_port, "web.preview_port")
    app = make_preview_app(preview, stop, now_utc, host)
    server = Server(server_config(app, log_config=_log_config(args.verbose)), on_stop=stop.set)
    draft = preview.current()
    if draft.error:
        print(f"  The draft does not build yet: {draft.error}", file=sys.stderr)
    watcher = threading.Thread(target=preview.watch, args=(stop,), daemon=True)
    watcher.start()
    print(
        f"Previewing on {_url(host, sock)}/ (reloads when the notes, templates or config "
        "change; Ctrl-C stops)",
        flush=True,
    )
    try:
        _run(server, sock)
    finally:
        stop.set()
        watcher.join(timeout=5)
    print("Stopped.")
    return 0
