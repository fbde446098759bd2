"""Calls an ASGI middleware class the way vLLM's server would, one scope per request, around an app
that only notes it was reached. Usage: asgi_call.py MODULE.CLASS < requests.json > results.json

Each request: {"type": "http"|"websocket", "method", "path", "root_path", "headers": [[name, value]]}.
Each result: {"reached": bool, "status": int|null, "headers": {...}, "body": str, "close": int|null}.
A constructor that raises prints {"error": "<its message>"} instead.
"""

import asyncio
import importlib
import json
import sys


def main():
    module_path, name = sys.argv[1].rsplit(".", 1)
    cls = getattr(importlib.import_module(module_path), name)
    try:
        async def noop(scope, receive, send):
            pass

        cls(noop)
    except Exception as e:
        print(json.dumps({"error": str(e)}))
        return
    out = []
    for req in json.load(sys.stdin):
        reached, sent = [], []

        async def app(scope, receive, send, reached=reached):
            reached.append(scope["path"])

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message, sent=sent):
            sent.append(message)

        scope = {
            "type": req.get("type", "http"),
            "path": req["path"],
            "root_path": req.get("root_path", ""),
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in req.get("headers", [])],
        }
        if scope["type"] == "http":
            scope["method"] = req.get("method", "GET")
        asyncio.run(cls(app)(scope, receive, send))
        start = next((m for m in sent if m["type"] == "http.response.start"), None)
        close = next((m for m in sent if m["type"] == "websocket.close"), None)
        out.append(
            {
                "reached": bool(reached),
                "status": start["status"] if start else None,
                "headers": {k.decode(): v.decode() for k, v in (start or {}).get("headers", [])},
                "body": b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body").decode(),
                "close": close["code"] if close else None,
            }
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
