"""`gateway` as a user runs it: no env file, no MONGODB_URI — the embedded database, Ctrl-C, restart."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from tests.conftest import ROOT, receive_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_gateway(data_dir: Path, env_file: Path, port: int) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "GATEWAY_", "OPENAI_"))}
    env.update(GATEWAY_ENV_FILE=str(env_file), GATEWAY_DATA_DIR=str(data_dir), GATEWAY_PORT=str(port))
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
    )


async def wait_ready(http: aiohttp.ClientSession, base: str, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(60):
        while True:
            assert process.returncode is None, "the gateway exited during start-up"
            try:
                async with http.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)


async def interrupt(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    async with asyncio.timeout(30):
        _, stderr = await process.communicate()
    return stderr.decode()


def secantus_running(storage: Path) -> bool:
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"secantusd" in part for part in cmdline) and str(storage).encode() in cmdline:
            return True
    return False


async def test_embedded_defaults_ctrl_c_and_a_restart_that_finds_the_same_conversations(
    tmp_path: Path,
) -> None:
    data_dir, env_file, port = tmp_path / "data", tmp_path / "empty.env", free_port()
    env_file.write_text("")
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        first = await start_gateway(data_dir, env_file, port)
        try:
            await wait_ready(http, base, first)
            async with http.post(f"{base}/webchat/sessions") as response:
                session = await response.json()
            ws = await http.ws_connect(f"{base}/webchat/ws?token={session['token']}")
            await ws.send_json({"type": "message", "text": "How long do refunds take?", "client_msg_id": "r1"})
            frames = await receive_until(ws, lambda f: f["type"] == "message" and f["author"] == "ai")
            assert "Source:" in frames[-1]["text"]
            await ws.close()
        finally:
            stderr = await interrupt(first)
        assert first.returncode == 0, stderr
        assert "embedded_db_stopped" in stderr
        assert not secantus_running(data_dir / "db"), "the embedded database outlived the gateway"

        second = await start_gateway(data_dir, env_file, port)
        try:
            await wait_ready(http, base, second)
            ws = await http.ws_connect(f"{base}/webchat/ws?token={session['token']}&after_seq=0")
            frames = [await ws.receive_json() for _ in range(3)]
            assert [(f.get("seq"), f.get("author")) for f in frames[1:]] == [(1, "customer"), (2, "ai")]
            assert frames[1]["text"] == "How long do refunds take?"
            await ws.close()
        finally:
            await interrupt(second)
        assert second.returncode == 0
