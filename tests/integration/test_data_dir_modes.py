"""The data directory is private: 0700 directories and 0600 files, the embedded database's included."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pymongo import AsyncMongoClient

from channels.webchat.plugin import WEBCHAT, token_secret
from gateway.app import gateway_secret
from gateway.data_dir import create_once
from gateway.embedded_db import EmbeddedDatabase
from gateway.settings import Settings


def modes_open_to_others(root: Path) -> list[str]:
    """Every path under `root` (and root) that the group or others may read, write or enter."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {mode:o}")
    return found


async def test_the_embedded_database_keeps_its_files_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)  # as an older version left it
    data.chmod(0o755)
    database = EmbeddedDatabase(data)
    uri = await database.start()
    try:
        client: AsyncMongoClient = AsyncMongoClient(uri)
        await client.modes.probe.insert_one({"written": True})
        await client.close()
    finally:
        await database.stop()
    assert any(p.is_file() for p in (data / "db").rglob("*")), "the database wrote no files"
    assert modes_open_to_others(data) == []


def test_the_generated_secrets_are_created_private(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, gateway_data_dir=tmp_path / "data", gateway_secret=None)  # type: ignore[call-arg]
    webchat = WEBCHAT.read(settings, {"webchat_secret": None})
    keys = gateway_secret(settings), token_secret(webchat, settings)
    assert all(len(key) >= 32 for key in keys) and keys[0] != keys[1]
    assert (gateway_secret(settings), token_secret(webchat, settings)) == keys, "the keys must survive a restart"
    assert modes_open_to_others(tmp_path / "data") == []
    names = sorted(p.name for p in (tmp_path / "data").iterdir())
    assert names == ["gateway-secret", "webchat-secret"], "no temporary file is left"


def test_a_data_dir_from_before_plugins_keeps_its_file_links_valid(tmp_path: Path) -> None:
    """Older versions signed file links with the web chat's generated key; it stays the gateway's key."""
    settings = Settings(_env_file=None, gateway_data_dir=tmp_path / "data", gateway_secret=None)  # type: ignore[call-arg]
    legacy = create_once(tmp_path / "data" / "webchat-secret", "k" * 48)
    WEBCHAT.build(WEBCHAT.read(settings), settings)
    assert gateway_secret(settings) == legacy.encode()


def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    path = tmp_path / "data" / "webchat-secret"
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda n: create_once(path, f"candidate-{n}"), range(64)))
    assert len(set(results)) == 1 and results[0].startswith("candidate-")
    assert path.read_text() == results[0]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
