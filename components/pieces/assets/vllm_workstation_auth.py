"""Requires the API key on every route of vLLM's HTTP server except /health.

vLLM's own --api-key check covers only some path prefixes: /v1 in 0.11.0, and /v1, /v2 and /inference
in 0.24.0. Inference is also served elsewhere, without a key: /invocations (the SageMaker entry point,
which dispatches to chat, completion, embedding and pooling handlers), /tokenize and /detokenize, and,
for pooling models, /pooling, /classify, /score and /rerank. Control routes (/sleep, /collective_rpc,
/scale_elastic_ep, /start_profile, ...) are open too.

vLLM loads this class through `--middleware vllm_workstation_auth.RequireApiKey`: it imports the
module, sees a class, and calls `app.add_middleware(RequireApiKey)`, so it is constructed with the app
alone. Added last, it is the outermost layer: it runs before routing and before vLLM's own middleware.

Open without the key:
- /health: the service manager and the stack's health check poll it; it answers 200 or 500 with an
  empty body, nothing else.
- OPTIONS requests, as vLLM's own check leaves them: a CORS preflight carries no credentials, and
  OPTIONS reaches no handler (the routes are GET and POST).
Everything else needs `Authorization: Bearer <key>`, /metrics (request counts, model name, timings),
/version (the exact release, for anyone matching known vulnerabilities), /load and /ping included.

The key comes from VLLM_API_KEY, as vLLM reads it. Without one the module refuses to start: loaded at
all, it means the key is required, and a missing key must close the server, never open it.

Plain ASGI and the standard library only: no Starlette import, so it works with any vLLM release.
"""

import hashlib
import hmac
import json
import os

OPEN_PATHS = frozenset({"/health"})


def _digest(value):
    return hashlib.sha256(value).digest()


class RequireApiKey:
    def __init__(self, app):
        key = os.environ.get("VLLM_API_KEY", "")
        if not key:
            raise RuntimeError("vllm_workstation_auth: VLLM_API_KEY is not set, refusing to serve without the API key")
        self.app = app
        # Both sides hashed: compare_digest then compares equal lengths, so neither the key's length nor
        # a matching prefix shows in the time an answer takes.
        self._want = _digest(key.encode("utf-8"))

    def _authorized(self, scope):
        value = b""
        for name, v in scope.get("headers") or []:
            if name.lower() == b"authorization":
                value = v
                break
        scheme, _, token = value.partition(b" ")
        ok = hmac.compare_digest(_digest(token.strip()), self._want)
        return ok and scheme.lower() == b"bearer"

    async def __call__(self, scope, receive, send):
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            # lifespan: not a request.
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        if (kind == "http" and (path in OPEN_PATHS or scope.get("method") == "OPTIONS")) or self._authorized(scope):
            return await self.app(scope, receive, send)
        if kind == "websocket":
            # Closing before accepting answers the handshake with 403.
            return await send({"type": "websocket.close", "code": 1008})
        body = json.dumps({"error": "Unauthorized"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
