"""The gateway under test, in its own process: the product's app plus the bench's stats route.

    python -m bench.serve_gateway --port 8123 --mongodb-uri mongodb://127.0.0.1:27017 --db bench_x

The app is `gateway.app.build_app` with the production defaults (offline responder on config/kb,
INFO logs as JSON on stderr, outbox polling every second), and a `CommandCounter` passed through
`command_listeners`. Two bench-only differences, both in this process only:

* `GET /__bench/stats` (and the profiler routes with `--profile`) are added to this app instance.
* The web chat's per-connection rate limit (20 messages in 10 s, for people) is lifted: a bench
  customer sends its next message as soon as the answer arrives. The limiter still runs on every
  message, with a 1 s window, so it does about the same work per message as in production.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from aiohttp import web

import channels.webchat.channel as webchat_channel
from bench.harness import CommandCounter, add_bench_routes, die_with_parent, server_arguments
from gateway.app import build_app
from gateway.logs import configure_logging
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = server_arguments("The gateway under test, with the bench's stats route.")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    die_with_parent()

    webchat_channel.RATE_WINDOW_SECONDS = 1.0
    webchat_channel.RATE_MAX_MESSAGES = 1_000_000

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]  # the bench never reads a developer's .env
        gateway_host=args.host,
        gateway_port=args.port,
        gateway_data_dir=args.data_dir,
        mongodb_uri=args.mongodb_uri,
        mongodb_db=args.db,
        kb_dir=ROOT / "config" / "kb",
        log_level=args.log_level,
        webchat_secret=secrets.token_urlsafe(48),
    )
    configure_logging(settings.log_level)
    counter = CommandCounter()
    app = build_app(settings, command_listeners=[counter])
    add_bench_routes(app, counter, args.profile)
    web.run_app(app, host=args.host, port=args.port, print=None, shutdown_timeout=10.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
