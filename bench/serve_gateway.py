"""The gateway under test, in its own process: the product's app plus the bench's stats route.

    python -m bench.serve_gateway --port 8123 --mongodb-uri mongodb://127.0.0.1:27017 --db bench_x

The app is `gateway.app.build_app` with the production defaults (offline responder on config/kb,
INFO logs as JSON on stderr, outbox polling every second, the web chat signing key generated once and
kept in `--data-dir`, so sessions outlive a restart: tests/chaos kills and restarts this process), and a
`CommandCounter` passed through `command_listeners`. Two bench-only differences, both in this process only:

* `GET /__bench/stats` (and the profiler routes with `--profile`) are added to this app instance.
* The web chat's abuse limits, made for people, are lifted through their settings: a bench customer
  sends its next message as soon as the answer arrives (WEBCHAT_RATE_MAX_MESSAGES, 20 in 10 s by
  default), and all customers come from 127.0.0.1 (WEBCHAT_SESSIONS_PER_IP_PER_HOUR, 30 by default).
  The limiters still run on every message and session, so they do the same work as in production.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web

from bench.harness import CommandCounter, add_bench_routes, die_with_parent, server_arguments
from gateway.app import build_app
from gateway.logs import configure_logging
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# The web chat's own settings (by env name), not patched module constants: the limiters take them when
# the app is built. They go to build_app's channel_settings: the core Settings would silently drop them.
BENCH_LIMITS = {"webchat_rate_max_messages": 10_000_000, "webchat_sessions_per_ip_per_hour": 10_000_000}


def main(argv: list[str] | None = None) -> int:
    parser = server_arguments("The gateway under test, with the bench's stats route.")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    die_with_parent()

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]  # the bench never reads a developer's .env
        gateway_host=args.host,
        gateway_port=args.port,
        gateway_data_dir=args.data_dir,
        mongodb_uri=args.mongodb_uri,
        mongodb_db=args.db,
        kb_dir=ROOT / "config" / "kb",
        log_level=args.log_level,
    )
    configure_logging(settings.log_level)
    counter = CommandCounter()
    app = build_app(settings, command_listeners=[counter], channel_settings=BENCH_LIMITS)
    add_bench_routes(app, counter, args.profile)
    web.run_app(app, host=args.host, port=args.port, print=None, shutdown_timeout=10.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
