"""A scripted server of the providers' batch APIs on a free loopback port, for tests: OpenAI's
``/v1/files`` and ``/v1/batches`` and Anthropic's ``/v1/messages/batches`` (with their results),
plus ``/v1/models`` and synchronous ``/v1/chat/completions``, all answered by one responder.

What a test scripts: how many polls a batch takes to end (``polls_to_end``; ``None``: it
never ends until :meth:`BatchServer.end_all`), which requests fail (``failing(custom_id,
body)`` returns an error message), and whether batches expire (nothing answered). It counts
the batches created, the polls and the synchronous calls.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ralign_tasks.testing.loopback import Responder


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class BatchServer:
    """Use as a context manager; ``base_url`` ends in ``/v1``."""

    def __init__(
        self,
        responder: Responder,
        polls_to_end: int | None = 1,
        failing: Callable[[str, dict[str, Any]], str | None] | None = None,
        expire: bool = False,
    ) -> None:
        self.responder = responder
        self.polls_to_end = polls_to_end
        self.failing = failing or (lambda custom_id, body: None)
        self.expire = expire
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.created = 0
        self.polls = 0
        self.sync_calls = 0
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> BatchServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def end_all(self) -> None:
        """Let every batch end at its next poll."""
        self.polls_to_end = 0

    # --- what the batches answer -----------------------------------------------------------

    def _text(self, body: dict[str, Any]) -> str:
        reply = self.responder(body)
        return reply if isinstance(reply, str) else reply.text

    def _openai_results(self, batch: dict[str, Any]) -> tuple[str | None, str | None]:
        """The output and error files of an ended OpenAI batch."""
        if self.expire:
            return None, None
        out, errors = [], []
        for line in self.files[batch["input_file_id"]].decode().splitlines():
            row = json.loads(line)
            body, custom_id = row["body"], row["custom_id"]
            failure = self.failing(custom_id, body)
            if failure:
                errors.append({"id": uuid.uuid4().hex, "custom_id": custom_id,
                               "response": {"status_code": 500, "body": {"error": {
                                   "message": failure}}}, "error": None})  # fmt: skip
                continue
            text = self._text(body)
            completion = {
                "id": "chatcmpl-" + uuid.uuid4().hex, "object": "chat.completion",
                "created": int(time.time()), "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": len(str(body["messages"]).split()),
                          "completion_tokens": len(text.split()),
                          "total_tokens": 0},
            }  # fmt: skip
            response = {"status_code": 200, "body": completion}
            out.append({"id": uuid.uuid4().hex, "custom_id": custom_id, "response": response,
                        "error": None})  # fmt: skip
        return self._file(out), self._file(errors)

    def _file(self, rows: list[dict[str, Any]]) -> str | None:
        if not rows:
            return None
        file_id = "file-" + uuid.uuid4().hex
        self.files[file_id] = "".join(json.dumps(row) + "\n" for row in rows).encode()
        return file_id

    def _anthropic_results(self, batch: dict[str, Any]) -> bytes:
        lines = []
        for request in batch["requests"]:
            custom_id, params = request["custom_id"], request["params"]
            failure = None if self.expire else self.failing(custom_id, params)
            if self.expire:
                result: dict[str, Any] = {"type": "expired"}
            elif failure:
                result = {"type": "errored", "error": {"type": "error", "error": {
                    "type": "api_error", "message": failure}}}  # fmt: skip
            else:
                text = self._text(params)
                result = {"type": "succeeded", "message": {
                    "id": "msg_" + uuid.uuid4().hex, "type": "message", "role": "assistant",
                    "model": params["model"], "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn", "stop_sequence": None,
                    "usage": {"input_tokens": len(str(params["messages"]).split()),
                              "output_tokens": len(text.split())},
                }}  # fmt: skip
            lines.append(json.dumps({"custom_id": custom_id, "result": result}) + "\n")
        return "".join(lines).encode()

    def _poll(self, batch: dict[str, Any]) -> bool:
        """Count a poll of a batch; whether it has ended."""
        self.polls += 1
        batch["polls"] += 1
        return self.polls_to_end is not None and batch["polls"] > self.polls_to_end

    # --- HTTP ------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, payload: Any, status: int = 200, raw: bytes | None = None) -> None:
                data = raw if raw is not None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0].rstrip("/")
                with server._lock:
                    if path == "/v1/models":
                        self._send({"object": "list", "data": [{"id": "loopback"}]})
                    elif path.startswith("/v1/files/") and path.endswith("/content"):
                        self._send(None, raw=server.files[path.split("/")[3]])
                    elif path.startswith("/v1/batches/"):
                        self._send(self._openai_batch(path.split("/")[3]))
                    elif path.startswith("/v1/messages/batches/") and path.endswith("/results"):
                        batch = server.batches[path.split("/")[4]]
                        self._send(None, raw=server._anthropic_results(batch))
                    elif path.startswith("/v1/messages/batches/"):
                        self._send(self._anthropic_batch(path.split("/")[4]))
                    else:
                        self._send({"error": {"message": f"no route {path}"}}, 404)

            def _openai_batch(self, batch_id: str) -> dict[str, Any]:
                batch = server.batches[batch_id]
                if batch["status"] == "in_progress" and server._poll(batch):
                    batch["status"] = "expired" if server.expire else "completed"
                    batch["output_file_id"], batch["error_file_id"] = server._openai_results(batch)
                return {key: value for key, value in batch.items() if key != "polls"}

            def _anthropic_batch(self, batch_id: str) -> dict[str, Any]:
                batch = server.batches[batch_id]
                if batch["processing_status"] == "in_progress" and server._poll(batch):
                    batch["processing_status"] = "ended"
                    batch["ended_at"] = "2026-01-01T00:00:00Z"
                    batch["results_url"] = f"{server.base_url}/messages/batches/{batch_id}/results"
                return {key: value for key, value in batch.items()
                        if key not in ("polls", "requests")}  # fmt: skip

            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0].rstrip("/")
                raw = self._body()
                with server._lock:
                    if path == "/v1/files":
                        self._send(self._upload(raw))
                    elif path == "/v1/batches":
                        body = json.loads(raw)
                        server.created += 1
                        batch_id = "batch_" + uuid.uuid4().hex
                        server.batches[batch_id] = {
                            "id": batch_id, "object": "batch", "endpoint": body["endpoint"],
                            "input_file_id": body["input_file_id"], "completion_window": "24h",
                            "status": "in_progress", "created_at": int(time.time()),
                            "output_file_id": None, "error_file_id": None, "polls": 0,
                        }  # fmt: skip
                        self._send(self._openai_batch(batch_id) | {"status": "validating"})
                    elif path == "/v1/messages/batches":
                        body = json.loads(raw)
                        server.created += 1
                        batch_id = "msgbatch_" + uuid.uuid4().hex
                        server.batches[batch_id] = {
                            "id": batch_id, "type": "message_batch",
                            "processing_status": "in_progress",
                            "request_counts": {"processing": len(body["requests"]),
                                               "succeeded": 0, "errored": 0, "canceled": 0,
                                               "expired": 0},
                            "created_at": "2026-01-01T00:00:00Z", "ended_at": None,
                            "expires_at": "2026-01-02T00:00:00Z", "archived_at": None,
                            "cancel_initiated_at": None, "results_url": None, "polls": 0,
                            "requests": body["requests"],
                        }  # fmt: skip
                        self._send(self._anthropic_batch(batch_id))
                    elif path == "/v1/chat/completions":
                        server.sync_calls += 1
                        body = json.loads(raw)
                        text = server._text(body)
                        self._send({
                            "id": "chatcmpl-sync", "object": "chat.completion",
                            "created": int(time.time()), "model": body["model"],
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": text}}],
                            "usage": {"prompt_tokens": len(str(body["messages"]).split()),
                                      "completion_tokens": len(text.split()), "total_tokens": 0},
                        })  # fmt: skip
                    else:
                        self._send({"error": {"message": f"no route {path}"}}, 404)

            def _upload(self, raw: bytes) -> dict[str, Any]:
                """A multipart upload's file part, kept under a new id."""
                head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
                message = BytesParser(policy=HTTP).parsebytes(head + raw)
                content = next(
                    part.get_payload(decode=True) for part in message.iter_parts()
                    if part.get_param("name", header="content-disposition") == "file"
                )  # fmt: skip
                file_id = "file-" + uuid.uuid4().hex
                server.files[file_id] = content
                return {"id": file_id, "object": "file", "bytes": len(content),
                        "created_at": int(time.time()), "filename": "batch.jsonl",
                        "purpose": "batch", "status": "processed"}  # fmt: skip

        return Handler
