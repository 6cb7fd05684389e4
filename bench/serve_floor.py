"""The floor: the least a web chat turn can cost here, in its own process, measured like the gateway.

    python -m bench.serve_floor --port 8124 --mongodb-uri mongodb://127.0.0.1:27017 --db bench_x_floor

A bare aiohttp app speaking just enough of the web chat protocol for the same load generator:
`POST /webchat/sessions` returns a random token (no database), and `/webchat/ws` answers every
message frame with one `insert_one` into the same database server and one `ai` message frame.
No validation, no logging, no AI: what is left is the web framework, the driver, and one write.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import WSMsgType, web
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from bench.harness import CommandCounter, add_bench_routes, die_with_parent, server_arguments

MESSAGES = web.AppKey("messages", AsyncCollection)


async def create_session(request: web.Request) -> web.Response:
    return web.json_response({"token": uuid.uuid4().hex, "conversation_id": uuid.uuid4().hex}, status=201)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    messages = request.app[MESSAGES]
    conversation_id = request.query.get("token", "")
    seq = 0
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        frame = json.loads(msg.data)
        seq += 1
        await messages.insert_one(
            {
                "conversation_id": conversation_id,
                "seq": seq,
                "author": "customer",
                "text": frame["text"],
                "client_msg_id": frame["client_msg_id"],
                "created_at": datetime.now(UTC),
            }
        )
        await ws.send_json({"type": "message", "seq": seq, "author": "ai", "text": "Noted."})
    return ws


def build_floor_app(uri: str, db: str, counter: CommandCounter) -> web.Application:
    app = web.Application()

    async def database(app: web.Application) -> AsyncIterator[None]:
        client: AsyncMongoClient = AsyncMongoClient(uri, tz_aware=True, event_listeners=[counter])
        app[MESSAGES] = client[db].messages
        try:
            yield
        finally:
            await client.close()

    app.cleanup_ctx.append(database)
    app.router.add_post("/webchat/sessions", create_session)
    app.router.add_get("/webchat/ws", websocket)
    return app


def main(argv: list[str] | None = None) -> int:
    args = server_arguments("The floor harness: one insert_one and one frame per message.").parse_args(argv)
    die_with_parent()
    counter = CommandCounter()
    app = build_floor_app(args.mongodb_uri, args.db, counter)
    add_bench_routes(app, counter, args.profile)
    web.run_app(app, host=args.host, port=args.port, print=None, shutdown_timeout=10.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
