"""The `gateway` command: `gateway` / `gateway serve` runs the server, `gateway check-config` validates."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.settings import Settings, SettingsError, env_file_path, load_settings, redact_url_credentials

if TYPE_CHECKING:
    from agent_bridge.ai.rules import RoutingRules


def config_report(settings: Settings) -> tuple[list[str], list[str]]:
    """What is enabled and what is wrong, as lines for a person reading a terminal."""
    from agent_bridge.ai.knowledge_base import KnowledgeBase, KnowledgeBaseError
    from agent_bridge.ai.rules import RulesError, load_rules
    from gateway.embedded_db import find_server_command

    enabled: list[str] = []
    problems: list[str] = []
    path, _ = env_file_path()
    enabled.append(f"env file: {path}" + ("" if path.is_file() else " (not found; environment and defaults only)"))
    # One line per channel in the registry: how it is reached, or what is missing.
    from channels.registry import CHANNELS

    for channel in CHANNELS:
        try:
            enabled.append(channel.report(settings))
        except SettingsError as exc:
            problems.extend(exc.problems)
    if settings.embedded_database:
        data = Path(settings.gateway_data_dir) / "db"
        if find_server_command() is None:
            problems.append(
                "MONGODB_URI: unset, and the embedded database (secantusd-py) is not installed; "
                "run `make run` or `pip install 'support-gateway[embedded]'`, or set MONGODB_URI"
            )
        else:
            enabled.append(f"database: embedded SecantusDB in {data} (MONGODB_URI unset), db {settings.mongodb_db!r}")
    else:
        enabled.append(f"database: MongoDB at MONGODB_URI, db {settings.mongodb_db!r}")
    kb = None
    try:
        kb = KnowledgeBase.load(settings.kb_dir)
        counts = f"{len(kb.article_titles)} articles, {len(kb.article_intents)} declare intents"
        enabled.append(f"knowledge base: {settings.kb_dir} ({counts})")
    except KnowledgeBaseError as exc:
        problems.append(f"KB_DIR: {exc}")
    try:
        rules = load_rules(settings.routing_file)
        examples = Path(rules.training_examples) if rules.training_examples else None
        if examples is not None and not examples.is_file():
            problems.append(f"{settings.routing_file}: training_examples: {examples} does not exist")
        enabled.append(
            f"routing rules: {settings.routing_file} ({len(rules.queues)} queues: {', '.join(rules.queue_names)}; "
            f"{len(rules.intents)} intents)"
        )
        if kb is not None:
            # An article declaring an intent the rules do not know would never be chosen by it.
            known = set(rules.intent_names)
            for article, intents in kb.article_intents.items():
                if unknown := sorted(intents - known):
                    problems.append(
                        f"{settings.kb_dir}/{article}.md: intents {unknown} are not intents in {settings.routing_file}"
                    )
        enabled_slack, slack_problems = slack_report(settings, rules)
        enabled += enabled_slack
        problems += slack_problems
    except RulesError as exc:
        problems.extend(exc.problems)
    if settings.openai_api_key is not None or settings.openai_base_url is not None:
        enabled.append(
            f"AI responder: {settings.openai_model} at {settings.openai_base_url or 'the OpenAI API'}, "
            "with the offline responder as its fallback"
        )
    else:
        enabled.append("AI responder: offline (set OPENAI_API_KEY or OPENAI_BASE_URL to use a model)")
    if settings.gateway_secret is None:
        from gateway.data_dir import SECRET_FILE

        enabled.append(f"file link key: generated and kept in {Path(settings.gateway_data_dir) / SECRET_FILE}")
    return enabled, problems


def slack_report(settings: Settings, rules: RoutingRules) -> tuple[list[str], list[str]]:
    if not settings.slack_enabled:
        return ["Slack: not connected (handoffs wait in the database; see docs/slack.md)"], []
    unrouted = [q.name for q in rules.queues if not q.slack_channel]
    if unrouted and not settings.slack_default_channel:
        return [], [
            f"{settings.routing_file}: queues {unrouted} have no slack_channel and SLACK_DEFAULT_CHANNEL is not set: "
            "their handoffs would have nowhere to go"
        ]
    events = f"events at {settings.base_url}/slack/events"
    mode = "Socket Mode (SLACK_APP_TOKEN)" if settings.slack_app_token else events
    channels = ", ".join(f"{q.name} → {q.slack_channel or settings.slack_default_channel}" for q in rules.queues)
    return [f"Slack: {mode}, API {settings.slack_api_url}; queue channels: {channels}"], []


def channel_value_problems() -> list[str]:
    """Wrong values in the channels' own settings, listed even when the core settings are wrong too."""
    from channels.registry import CHANNELS

    path, _ = env_file_path()
    problems: list[str] = []
    for channel in CHANNELS:
        try:
            channel.read(None, env_file=path if path.is_file() else None)
        except SettingsError as exc:
            problems.extend(exc.problems)
    return problems


def validated_settings() -> tuple[Settings | None, list[str], list[str]]:
    """Settings, what they enable, and every problem: wrong values first, then missing pieces."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        return None, [], exc.problems + channel_value_problems()
    enabled, problems = config_report(settings)
    return settings, enabled, problems


def print_problems(header: str, problems: list[str]) -> None:
    print(header, file=sys.stderr)
    for problem in problems:
        print(f"  - {redact_url_credentials(problem)}", file=sys.stderr)


def check_config() -> int:
    _, enabled, problems = validated_settings()
    # PUBLIC_BASE_URL, OPENAI_BASE_URL and SLACK_API_URL may carry user:password; the terminal gets ***.
    for line in enabled:
        print(f"  ok  {redact_url_credentials(line)}")
    if problems:
        print_problems(f"{len(problems)} problem(s) found:", problems)
        return 2
    print("configuration is valid", file=sys.stderr)
    return 0


def triage() -> int:
    from gateway import triage_command

    settings, _, problems = validated_settings()
    if settings is None or problems:
        print_problems("Cannot triage; fix these settings:", problems)
        return 2
    return triage_command.run(settings)


def serve() -> int:
    from aiohttp import web

    from gateway.app import build_app
    from gateway.logs import configure_logging

    settings, _, problems = validated_settings()
    if settings is None or problems:
        print_problems("The gateway cannot start; fix these settings:", problems)
        return 2
    configure_logging(settings.log_level)
    print(
        f"Support gateway on {redact_url_credentials(settings.base_url)}/  (Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )
    web.run_app(
        build_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        print=None,
        shutdown_timeout=10.0,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway", description="Customer-support gateway")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the gateway (the default)")
    sub.add_parser("check-config", help="show what is enabled, what is missing, and every wrong value")
    sub.add_parser(
        "triage",
        help="customer messages on stdin (a line each, or JSON lines with a text field): a JSON decision per line",
    )
    args = parser.parse_args(argv)
    if args.command == "check-config":
        return check_config()
    if args.command == "triage":
        return triage()
    return serve()


if __name__ == "__main__":
    sys.exit(main())
