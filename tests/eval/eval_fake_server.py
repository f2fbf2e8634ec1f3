"""A local OpenAI-compatible completions server on 127.0.0.1 for the openai-policy tests.

It answers ``POST /v1/completions`` with a scripted reply, can fail with HTTP 500 after a number of
successful requests, and records every request body.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


class FakeCompletions:
    """``with FakeCompletions(reply) as server: server.base_url ...``"""

    def __init__(self, reply: Callable[[dict[str, Any]], dict[str, Any]], fail_after: int | None = None, status: int = 500):
        self.reply = reply  # request body -> {"text": str, "token_ids": list[int] | None, "finish_reason": str}
        self.fail_after = fail_after  # successful requests before every request fails with ``status``
        self.status = status
        self.requests: list[dict[str, Any]] = []
        self.failed = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server._lock:
                    ok = server.fail_after is None or len(server.requests) < server.fail_after
                    if ok:
                        server.requests.append(body)
                    else:
                        server.failed += 1
                if self.path != "/v1/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if not ok:
                    return self._send(server.status, {"error": {"message": "engine crashed", "type": "internal_error"}})
                out = server.reply(body)
                choice = {"index": 0, "text": out["text"], "finish_reason": out.get("finish_reason", "stop"), "logprobs": None}
                if out.get("token_ids") is not None:
                    choice["token_ids"] = out["token_ids"]
                self._send(200, {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": body.get("model"),
                                 "choices": [choice], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

            def _send(self, status: int, obj: dict[str, Any]) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "FakeCompletions":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
