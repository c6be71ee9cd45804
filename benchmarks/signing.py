"""What DKIM signing costs: per message, and on a whole send against the same send unsigned.

Run by hand from the project folder:  python benchmarks/signing.py [--subscribers 2000]

Signs the real 2024-07-16 issue's message (charts inline, about 180 KB) with a 2048-bit RSA key
made for the run, then sends the issue to the same list twice over loopback to the discarding
SMTP sink of benchmarks/send.py: once without a dkim section, once with one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.send import _config, _subscribers, discarding_sink  # noqa: E402

AS_OF = date(2024, 7, 16)
ENVIRON = {"NEWSLETTER_UNSUBSCRIBE_SECRET": "b" * 32}


def _key_file(root: Path) -> Path:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = root / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _with_dkim(config_path: Path, key_file: Path) -> Path:
    raw = yaml.safe_load(config_path.read_text())
    raw["dkim"] = {"domain": "example.com", "selector": "bench", "private_key_file": str(key_file)}
    raw["paths"]["var_dir"] = str(config_path.parent / "var-dkim")
    signed = config_path.with_name("config-dkim.yaml")
    signed.write_text(yaml.safe_dump(raw))
    return signed


def _send(config_path: Path) -> tuple[int, float]:
    from newsletter.app.build import build_issue  # noqa: PLC0415
    from newsletter.app.send import send_issue  # noqa: PLC0415
    from newsletter.config import load_config, resolve_secrets  # noqa: PLC0415

    config = load_config(config_path)
    secrets = resolve_secrets(config, ENVIRON)
    built = build_issue(config, AS_OF)
    started = time.perf_counter()
    result = send_issue(config, built, secrets=secrets, clock=lambda: datetime.now(UTC))
    return result.report.sent, time.perf_counter() - started


def _sign_once(config_path: Path, rounds: int) -> float:
    """Seconds to sign one message of the issue, over `rounds` signatures."""
    from newsletter.app.build import build_issue, sample_message  # noqa: PLC0415
    from newsletter.app.signing import message_signer  # noqa: PLC0415
    from newsletter.config import load_config, resolve_secrets  # noqa: PLC0415

    config = load_config(config_path)
    sign = message_signer(config, resolve_secrets(config, ENVIRON))
    message = sample_message(config, build_issue(config, AS_OF).rendered)
    started = time.perf_counter()
    for _ in range(rounds):
        sign(message)
    print(f"message:        {len(message) / 1024:.0f} KB")
    return (time.perf_counter() - started) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with discarding_sink() as port, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plain = _config(root, port, _subscribers(root, args.subscribers))
        signed = _with_dkim(plain, _key_file(root))
        per_message = _sign_once(signed, args.rounds)
        print(f"signing:        {per_message * 1000:.1f} ms per message (2048-bit RSA, dkimpy)")
        for name, path in (("unsigned send", plain), ("signed send", signed)):
            sent, seconds = _send(path)
            print(f"{name + ':':15} {sent} messages in {seconds:.1f} s = {sent / seconds:.0f}/s")
    print("load average:   {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
