"""The `newsletter` command: parses arguments, calls the application layer, prints.

Heavy libraries are imported only inside commands, so `newsletter --help` is instant. The CLI
is the one place that reads the environment and the clock, and prints; errors become one line
(`--verbose` adds the traceback).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import TYPE_CHECKING

from newsletter.cli.common import LOG_FORMAT, now_utc
from newsletter.cli.parser import build_parser
from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["build_parser", "main", "scheduled_job"]

CLOSED_PIPE = 141
"""The exit code of a command whose output pipe closed (128 + SIGPIPE, as a shell reports it)."""


def scheduled_job(config_path: str, fire: str | None = None) -> str:
    """The stored weekly job's entry point (the job store keeps this import path): one run with
    this process's environment and clock."""
    from newsletter.schedule import run_job  # noqa: PLC0415

    return run_job(config_path, fire, environ=os.environ, clock=now_utc)


def _quiet_libraries(verbose: bool) -> None:
    for chatty in ("mail.log", "matplotlib", "flufl.bounce"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    if not verbose:
        # yfinance logs every failed download itself; the one line that matters reaches the user
        # as our FetchError (--verbose shows all of it).
        logging.getLogger("yfinance").setLevel(logging.CRITICAL)
        # flufl.bounce logs a detector's traceback before raising; the message's record says why.
        logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format=LOG_FORMAT,
    )
    _quiet_libraries(args.verbose)
    try:
        code = int(args.handler(args))
        sys.stdout.flush()  # here, so a reader that went away is met by the handler below
        return code
    except NewsletterError as err:
        if args.verbose:
            traceback.print_exc(file=sys.stderr)
        print(f"Error: {err}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:
        # The reader of our output went away (`newsletter ... | head`): say nothing more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return CLOSED_PIPE
    except KeyboardInterrupt:
        print(
            "Error: interrupted; run the same command again to resume where it stopped",
            file=sys.stderr,
        )
        return 130
    except Exception as err:
        if args.verbose:
            traceback.print_exc(file=sys.stderr)
        print(
            f"Error: unexpected {type(err).__name__}: {err} (run again with --verbose for the "
            "traceback)",
            file=sys.stderr,
        )
        return 1
