"""How many DKIM signatures a core makes per second (`python -m queues.delivery.bench_sign`; `make bench` uses
`measure_sign_rate`). Signs a ~5 KB message, the benchmark's size, with a fresh key of each algorithm."""

from __future__ import annotations

import argparse
import time

from .dkim import ED25519_SHA256, RSA_SHA256, DkimSigner, generate_private_key

PARAGRAPH = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore "
    "magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo."
)


def sample_message(size: int = 5000) -> bytes:
    """A plain-text message of about `size` bytes with the usual headers, CRLF line endings."""
    headers = (
        "From: Sender <sender@example.test>\r\n"
        "To: recipient@example.net\r\n"
        "Subject: Benchmark message\r\n"
        "Date: Sat, 28 Nov 2026 01:00:00 +0000\r\n"
        "Message-ID: <bench@example.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
    )
    lines, length = [], len(headers)
    while length < size:
        line = PARAGRAPH[: min(76, size - length)] + "\r\n"
        lines.append(line)
        length += len(line)
    return (headers + "".join(lines)).encode()


def measure_sign_rate(algorithm: str = RSA_SHA256, *, seconds: float = 2.0, size: int = 5000) -> float:
    """Signatures per second on one core for a `size`-byte message."""
    signer = DkimSigner("example.test", "bench", generate_private_key(algorithm), algorithm)
    message = sample_message(size)
    signer.sign(message)  # warm up
    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while True:
        signer.sign(message)
        count += 1
        if count % 16 == 0 and time.perf_counter() >= deadline:
            break
    return count / (time.perf_counter() - started)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--size", type=int, default=5000)
    args = parser.parse_args(argv)
    for algorithm in (RSA_SHA256, ED25519_SHA256):
        rate = measure_sign_rate(algorithm, seconds=args.seconds, size=args.size)
        print(f"dkim {algorithm}: {rate:,.0f} signs/s per core ({args.size} B message)")


if __name__ == "__main__":
    main()
