"""Settings from env files and `gateway check-config`, run as a manager would run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.settings import SettingsError, load_settings
from tests.conftest import ROOT


def run_gateway(*args: str, env_file: Path, **env: str) -> subprocess.CompletedProcess[str]:
    ours = ("MONGODB_", "GATEWAY_", "OPENAI_", "WEBCHAT_", "TELEGRAM_")
    base = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    base.update(GATEWAY_ENV_FILE=str(env_file), **env)
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_setting_is_documented_in_the_example_env_file() -> None:
    from channels.registry import CHANNELS
    from gateway.settings import Settings

    documented = (ROOT / "config" / "example.env").read_text()
    names = [name.upper() for name in Settings.model_fields]
    for channel in CHANNELS:
        prefix = str(channel.settings.model_config.get("env_prefix", ""))
        names += [(prefix + name).upper() for name in channel.settings.model_fields]
    for name in names:
        assert f"{name}=" in documented, f"{name} is missing from config/example.env"
    assert "GATEWAY_ENV_FILE" in documented


def test_env_file_values_load_and_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "gateway.env"
    env_file.write_text("GATEWAY_PORT=9090\nMONGODB_DB=support\nLOG_LEVEL=DEBUG\n")
    monkeypatch.setenv("GATEWAY_ENV_FILE", str(env_file))
    monkeypatch.setenv("MONGODB_DB", "fromenv")
    settings = load_settings()
    assert settings.gateway_port == 9090
    assert settings.mongodb_db == "fromenv"
    assert settings.log_level == "DEBUG"


def test_a_named_env_file_that_does_not_exist_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ENV_FILE", str(tmp_path / "nope.env"))
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings()


def test_check_config_reports_what_is_enabled(tmp_path: Path) -> None:
    env_file = tmp_path / "ok.env"
    env_file.write_text(f"GATEWAY_DATA_DIR={tmp_path / 'data'}\n")
    result = run_gateway("check-config", env_file=env_file)
    assert result.returncode == 0, result.stderr
    assert "embedded SecantusDB" in result.stdout
    assert "12 articles, 12 declare intents" in result.stdout
    assert "configuration is valid" in result.stderr
    # One line per registered channel: how it is reached, or what it is missing.
    assert "Web chat: http://127.0.0.1:8080/ (widget" in result.stdout
    assert "Telegram: not connected" in result.stdout


def test_check_config_gives_one_clear_message_per_wrong_value(tmp_path: Path) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text(
        "GATEWAY_PORT=99999\nMONGODB_URI=postgres://db\nMONGODB_DB=my.db\nLOG_LEVEL=LOUD\n"
        "WEBCHAT_SECRET=short\nOPENAI_BASE_URL=not a url\n"
    )
    result = run_gateway("check-config", env_file=env_file)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert len(lines) == 6, result.stderr
    for name in (
        "GATEWAY_PORT",
        "MONGODB_URI",
        "MONGODB_DB",
        "LOG_LEVEL",
        "WEBCHAT_SECRET",
        "OPENAI_BASE_URL",
    ):
        assert any(line.startswith(f"  - {name}:") for line in lines), (name, result.stderr)
    assert "postgres://db" not in result.stderr, "a connection string (may hold a password) was echoed"


def test_a_missing_knowledge_base_is_reported(tmp_path: Path) -> None:
    env_file = tmp_path / "kb.env"
    env_file.write_text(f"KB_DIR={tmp_path / 'no-kb'}\n")
    result = run_gateway("check-config", env_file=env_file)
    assert result.returncode == 2
    assert "KB_DIR:" in result.stderr and "no-kb" in result.stderr


def test_the_server_refuses_to_start_on_invalid_settings(tmp_path: Path) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text("GATEWAY_PORT=eighty\n")
    result = run_gateway(env_file=env_file)
    assert result.returncode == 2
    assert "cannot start" in result.stderr and "GATEWAY_PORT:" in result.stderr


def test_a_wrong_routing_file_stops_check_config_and_the_server(tmp_path: Path) -> None:
    rules = tmp_path / "routing.yaml"
    rules.write_text((ROOT / "config" / "routing.yaml").read_text().replace("sla_minutes: 60", "sla_minutes: -5"))
    env_file = tmp_path / "rules.env"
    env_file.write_text(f"ROUTING_FILE={rules}\n")
    for args in (("check-config",), ()):
        result = run_gateway(*args, env_file=env_file)
        assert result.returncode == 2
        assert f"{rules}: queues[1].sla_minutes:" in result.stderr, result.stderr


def test_redact_url_credentials_hides_every_urls_user_and_password() -> None:
    from gateway.settings import redact_url_credentials

    assert redact_url_credentials("mongodb://app:s3cret@db:27017/x") == "mongodb://***@db:27017/x"
    assert (
        redact_url_credentials("at https://app:p@ss@h/v1 and http://tok@b/") == "at https://***@h/v1 and http://***@b/"
    )
    assert redact_url_credentials("http://host/path?mail=a@b.example") == "http://host/path?mail=a@b.example"
    assert redact_url_credentials("no url: user:pw@host") == "no url: user:pw@host"


def test_check_config_never_prints_credentials_in_urls(tmp_path: Path) -> None:
    env_file = tmp_path / "creds.env"
    env_file.write_text(
        f"GATEWAY_DATA_DIR={tmp_path / 'data'}\n"
        "PUBLIC_BASE_URL=https://site:pw-public@support.example\n"
        "OPENAI_BASE_URL=https://model:pw-openai@models.example/v1\n"
        "SLACK_BOT_TOKEN=xoxb-1-2-3\nSLACK_SIGNING_SECRET=0123456789abcdef\nSLACK_DEFAULT_CHANNEL=#support\n"
        "SLACK_API_URL=https://proxy:pw-slack@slack.example/api/\n"
    )
    result = run_gateway("check-config", env_file=env_file)
    output = result.stdout + result.stderr
    assert "models.example" in output and "slack.example" in output and "support.example" in output, output
    for password in ("pw-public", "pw-openai", "pw-slack"):
        assert password not in output, output
    assert "https://***@models.example/v1" in output


def test_a_wrong_url_setting_is_reported_without_its_credentials(tmp_path: Path) -> None:
    env_file = tmp_path / "bad-url.env"
    env_file.write_text("OPENAI_BASE_URL=https://model:pw-openai@\nPUBLIC_BASE_URL=ftp://site:pw-public@x.example\n")
    for args in (("check-config",), ()):
        result = run_gateway(*args, env_file=env_file)
        assert result.returncode == 2
        assert "OPENAI_BASE_URL:" in result.stderr and "PUBLIC_BASE_URL:" in result.stderr, result.stderr
        assert "pw-openai" not in result.stderr and "pw-public" not in result.stderr, result.stderr
        assert "ftp://***@x.example" in result.stderr, result.stderr


def test_check_config_says_how_telegram_is_reached_or_what_is_wrong(tmp_path: Path) -> None:
    token = "123456789:AAHfakeTokenForGatewayTests-0123456789"
    env_file = tmp_path / "tg.env"
    env_file.write_text(f"GATEWAY_DATA_DIR={tmp_path / 'data'}\nTELEGRAM_BOT_TOKEN={token}\n")
    result = run_gateway("check-config", env_file=env_file)
    assert result.returncode == 0, result.stderr
    assert "Telegram: long polling" in result.stdout
    env_file.write_text(f"TELEGRAM_BOT_TOKEN={token}\nPUBLIC_BASE_URL=https://support.example.com\n")
    result = run_gateway("check-config", env_file=env_file)
    assert "Telegram: webhook at https://support.example.com/telegram/webhook" in result.stdout
    assert token not in result.stdout + result.stderr
    env_file.write_text("TELEGRAM_BOT_TOKEN=not-a-token\nTELEGRAM_MODE=webhook\nTELEGRAM_WEBHOOK_SECRET=has spaces\n")
    result = run_gateway("check-config", env_file=env_file)
    assert result.returncode == 2
    assert "TELEGRAM_BOT_TOKEN: is not a bot token" in result.stderr and "not-a-token" not in result.stderr
    assert "TELEGRAM_WEBHOOK_SECRET: must be 1-256 characters" in result.stderr
    env_file.write_text(f"TELEGRAM_BOT_TOKEN={token}\nTELEGRAM_MODE=webhook\n")
    result = run_gateway("check-config", env_file=env_file)
    assert result.returncode == 2 and "TELEGRAM_MODE: webhook needs PUBLIC_BASE_URL" in result.stderr
    env_file.write_text(f"TELEGRAM_BOT_TOKEN={token}\nPUBLIC_BASE_URL=http://support.example.com:8080\n")
    result = run_gateway("check-config", env_file=env_file)
    assert result.returncode == 2 and "Telegram delivers webhooks only to https" in result.stderr


def test_an_article_declaring_an_intent_the_rules_lack_is_reported(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "gifts.md").write_text("---\nintents: [gift_wrapping]\n---\n# Gift wrapping\n\nWe wrap gifts for 3 USD.\n")
    env_file = tmp_path / "kb.env"
    env_file.write_text(f"KB_DIR={kb}\nGATEWAY_DATA_DIR={tmp_path / 'data'}\n")
    result = run_gateway("check-config", env_file=env_file)
    assert result.returncode == 2
    assert "gifts.md: intents ['gift_wrapping'] are not intents in config/routing.yaml" in result.stderr
