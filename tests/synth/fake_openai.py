"""A local fake OpenAI-compatible server (``http.server`` on 127.0.0.1) with scripted replies and injected faults.

Replies come from a ``brain(kind, request_json) -> (text, finish_reason)``; ``kind`` is "chat" or "completions".
Faults are injected by request sequence number (1-based, over all requests) or by a predicate on the request:
"429" (with ``Retry-After: 0``), "500", "400", "401", "timeout" (the reply is held for ``hold_s`` seconds, longer
than the client's timeout). Every request is logged.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


class FakeOpenAI:
    def __init__(
        self,
        brain: Callable[[str, dict[str, Any]], tuple[str, str]],
        faults: dict[int, str] | None = None,
        fault_if: Callable[[str, dict[str, Any]], str | None] | None = None,
        hold_s: float = 2.0,
        delay_s: float = 0.0,
    ):
        self.brain = brain
        self.faults = dict(faults or {})
        self.fault_if = fault_if
        self.hold_s = hold_s  # how long a "timeout" fault holds the reply
        self.delay_s = delay_s  # added to every successful reply
        self.log: list[dict[str, Any]] = []  # {"seq", "kind", "body", "fault"}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def injected(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for entry in self.log:
            if entry["fault"]:
                out[entry["fault"]] = out.get(entry["fault"], 0) + 1
        return out

    def __enter__(self) -> "FakeOpenAI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                kind = "chat" if self.path.endswith("/chat/completions") else "completions"
                with fake._lock:
                    seq = len(fake.log) + 1
                    fault = fake.faults.get(seq) or (fake.fault_if(kind, body) if fake.fault_if else None)
                    fake.log.append({"seq": seq, "kind": kind, "body": body, "fault": fault})
                try:
                    if fault == "timeout":
                        time.sleep(fake.hold_s)
                    elif fault in ("429", "500", "400", "401"):
                        self._send(int(fault), {"error": {"message": f"injected {fault}", "type": "injected"}}, {"Retry-After": "0"})
                        return
                    if fake.delay_s:
                        time.sleep(fake.delay_s)
                    text, finish = fake.brain(kind, body)
                    self._send(200, _reply(kind, body, text, finish))
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


def _reply(kind: str, body: dict[str, Any], text: str, finish: str) -> dict[str, Any]:
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    if kind == "chat":
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model"),
            "choices": [choice],
            "usage": usage,
        }
    choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
    return {"id": "cmpl-fake", "object": "text_completion", "created": 0, "model": body.get("model"), "choices": [choice], "usage": usage}
