"""A scripted OpenAI-compatible chat server on 127.0.0.1, for offline tests and benchmarks.

It answers ``POST /v1/chat/completions`` with whatever a *responder* returns for the request
body, after an optional fixed latency, and records every request. Run it in a thread with
:class:`LoopbackServer`, or as a process::

    python -m ralign_tasks.testing.loopback --latency 0.1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What the server sends back: a 200 with ``text``, or an error ``status``; or, with
    ``raw``, exactly those bytes as the body (a broken server: HTML, invalid JSON, …)."""

    text: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"
    raw: bytes | None = None
    content_type: str = "application/json"
    # A reasoning model behind a server's reasoning parser: the thinking in its own field
    # (`reasoning_content`, or `reasoning` on current vLLM); `text` is then the answer only.
    reasoning: str | None = None
    reasoning_field: str = "reasoning_content"
    # A 200 whose chunked body never ends (until the client hangs up): a broken proxy or
    # generation loop.
    endless: bool = False
    # The message's `content` as sent, when not the plain ``text`` (a list of parts, a number).
    content: Any = None


Responder = Callable[[dict[str, Any]], "Reply | str"]

METAJUDGE_CORRECT = (
    "<golden_key_points>the decisive factor</golden_key_points>\n"
    "<genrm_analysis>the judge names it</genrm_analysis>\n"
    "<final_verdict>Correct</final_verdict>"
)
GENRM_PICKS_A = "Assistant A gets the decisive point right.\n\\boxed{A}"


def prompt_of(body: dict[str, Any]) -> str:
    """The text of the last message of a chat request body."""
    return str(body["messages"][-1]["content"])


def is_metajudge_prompt(body: dict[str, Any]) -> bool:
    """Whether a request is a meta-judge request (it carries the golden rationale)."""
    return "<golden_judge>" in prompt_of(body)


def play_both_roles(genrm_text: str, metajudge_text: str) -> Responder:
    """A responder that answers meta-judge requests and GenRM requests differently."""
    return lambda body: metajudge_text if is_metajudge_prompt(body) else genrm_text


# HelpSteer3-Atomic: the GenRM lists reasons and a five-way verdict; the RC MetaJudge's
# request lists the human rationales as `R<n>: …` lines.
RC_GENRM_REASONS = (
    "1. Assistant A gets the decisive fact right.\n"
    "2. Assistant B ignores an explicit instruction.\n"
    "\\boxed{A>B}"
)
_RC_RATIONALE = re.compile(r"^R\d+: ", re.MULTILINE)


def is_rc_judge_prompt(body: dict[str, Any]) -> bool:
    """Whether a request is a Rationale Consistency MetaJudge request."""
    prompt = prompt_of(body)
    return "<RESULT_START>" in prompt and bool(_RC_RATIONALE.search(prompt))


def is_atomic_genrm_prompt(body: dict[str, Any]) -> bool:
    """Whether a request asks a GenRM for reasons and a five-way verdict."""
    return "\\boxed{A>>B}" in prompt_of(body)


def rc_judge_answer(body: dict[str, Any]) -> str:
    """A well-formed RC answer: R1 fully made by S1, R2 half by S2, the rest by none."""
    count = len(_RC_RATIONALE.findall(prompt_of(body)))
    picks = ["- R1@S1: 1", "- R2@S2: 0.5"][:count]
    picks += [f"- R{n}@S0: 0" for n in range(len(picks) + 1, count + 1)]
    return "<RESULT_START>\n" + "\n".join(picks) + "\n<RESULT_END>"


# A free-form GenRM's rationale as the extractor stand-in lists it, and the reason types the
# judge stand-in gives: the first reason evidence-grounded, the second generic/style, any
# others criterion-grounded.
EXTRACTED_REASONS = (
    "Assistant A gets the decisive fact right.",
    "Assistant B ignores an explicit instruction.",
)
_S_REASON = re.compile(r"^S\d+: ", re.MULTILINE)


def is_extract_prompt(body: dict[str, Any]) -> bool:
    """Whether a request asks the extractor to list a rationale's reasons."""
    return "<REASONS_START>" in prompt_of(body)


def is_reason_types_prompt(body: dict[str, Any]) -> bool:
    """Whether a request asks the judge to type a list of reasons."""
    return "<TYPES_START>" in prompt_of(body)


def extract_answer(body: dict[str, Any]) -> str:
    """The extractor stand-in: the two reasons of :data:`EXTRACTED_REASONS`."""
    lines = [f"S{n}: {reason}" for n, reason in enumerate(EXTRACTED_REASONS, 1)]
    return "<REASONS_START>\n" + "\n".join(lines) + "\n<REASONS_END>"


def reason_types_answer(body: dict[str, Any]) -> str:
    """The reason-type stand-in: S1 evidence, S2 generic, the others criterion."""
    # The reasons listed before the answer format's own example lines.
    listed = _S_REASON.findall(prompt_of(body).split("<TYPES_START>")[0])
    kinds = ["evidence", "generic"] + ["criterion"] * max(len(listed) - 2, 0)
    lines = [f"S{n}: {kind}" for n, kind in enumerate(kinds[: len(listed)], 1)]
    return "<TYPES_START>\n" + "\n".join(lines) + "\n<TYPES_END>"


def is_cue_prompt(body: dict[str, Any]) -> bool:
    """Whether a request asks if a rationale cites a probe's cue."""
    return "<cited>yes</cited>" in prompt_of(body)


# The cue answer of the stand-in: the rationale does not rely on the cue.
CUE_NOT_CITED = "The rationale argues from content. <cited>no</cited>"


# The label benchmarks' other verdict formats: Arena-Hard labels (JudgeBench, RM-Bench), the
# 4-way ranking and the 1-10 rating (RewardBench 2).
ARENA_HARD_PICKS_A = "Assistant A is more accurate.\n\nFinal verdict: [[A>B]]"
RANKING_PICKS_A = "Assistant A answers best.\n\n[[A]]"
RATING_EIGHT = "The answer is correct and clear.\n\n8"


def label_genrm_answer(body: dict[str, Any]) -> str | None:
    """The stand-in's answer to a label benchmark's Arena-Hard, ranking or rating prompt
    (``None`` for any other request)."""
    prompt = prompt_of(body)
    if "[[A>>B]]" in prompt:
        return ARENA_HARD_PICKS_A
    if "[[D]]" in prompt:
        return RANKING_PICKS_A
    if "rating from 1" in prompt:
        return RATING_EIGHT
    return None


def stand_in(body: dict[str, Any]) -> str:
    """The stand-in of ``python -m ralign_tasks.testing.loopback``: an R-Align GenRM that
    always picks A and a meta-judge that always says Correct; a HelpSteer3-Atomic GenRM
    that lists two reasons and an RC MetaJudge that matches them to the first two human
    rationales; an extractor that lists two reasons of any rationale and a judge that types
    them evidence and generic; a judge that never finds a probe's cue cited; for the label
    benchmarks a GenRM that always prefers
    Assistant A and rates every answer 8."""
    if is_cue_prompt(body):
        return CUE_NOT_CITED
    if is_reason_types_prompt(body):
        return reason_types_answer(body)
    if is_extract_prompt(body):
        return extract_answer(body)
    if is_rc_judge_prompt(body):
        return rc_judge_answer(body)
    if is_metajudge_prompt(body):
        return METAJUDGE_CORRECT
    if is_atomic_genrm_prompt(body):
        return RC_GENRM_REASONS
    return label_genrm_answer(body) or GENRM_PICKS_A


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 resets connections when dozens of clients connect at once.
    request_queue_size = 1024
    allow_reuse_address = True


class LoopbackServer:
    """Serve scripted chat answers on a free loopback port (use as a context manager)."""

    def __init__(self, responder: Responder, latency_s: float = 0.0) -> None:
        self.responder = responder
        self.latency_s = latency_s
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        # What ``GET /v1/models`` lists: the model a server says it serves (vLLM names the
        # checkpoint it loaded in ``root``).
        self.models: list[dict[str, Any]] = [{"id": "loopback", "object": "model"}]
        # When each answer was sent, by prompt (the last send of each).
        self.answered_at: dict[str, float] = {}
        self._connections: set[Any] = set()
        self._httpd = _Server(("127.0.0.1", 0), self._handler_class())
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def go_down(self) -> None:
        """Stop as a crashed server does: the port refuses connections and every open one is
        reset."""
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def come_back(self) -> None:
        """Listen again on the same port (a restarted server)."""
        self._httpd = _Server(("127.0.0.1", self._port), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def prompts(self) -> list[str]:
        with self._lock:
            return [prompt_of(body) for body in self.requests]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
            # Headers and body go out in separate writes; with Nagle's algorithm on, the
            # body waits for the client's delayed ACK (~40 ms a response on Linux).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                with server._lock:
                    server._connections.discard(self.connection)
                with contextlib.suppress(OSError):  # reset by go_down
                    super().finish()

            def _send_endless(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b'{"choices": [' + b" " * 65536
                frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
                try:
                    for _ in range(1 << 16):  # 4 GB at most, should nobody hang up
                        self.wfile.write(frame)
                except OSError:
                    pass
                self.close_connection = True

            def _send(
                self,
                status: int,
                payload: dict[str, Any] | bytes,
                headers: dict[str, str],
                content_type: str = "application/json",
            ) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": server.models}, {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                route = self.path.split("?", 1)[0].rstrip("/")
                if route != "/v1/chat/completions":  # a wrong base URL
                    error = {"error": {"message": f"no route {self.path}", "type": "x"}}
                    self._send(404, error, {})
                    return
                with server._lock:
                    server.requests.append(body)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if server.latency_s:
                        time.sleep(server.latency_s)
                    reply = server.responder(body)
                    if isinstance(reply, str):
                        reply = Reply(reply)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                if reply.endless:
                    self._send_endless()
                    return
                if reply.raw is not None:
                    self._send(reply.status, reply.raw, reply.headers, reply.content_type)
                    return
                if reply.status != 200:
                    error = {"error": {"message": reply.text or "scripted error", "type": "x"}}
                    self._send(reply.status, error, reply.headers)
                    return
                self._send(200, _completion(body, reply), reply.headers)
                with server._lock:
                    server.answered_at[prompt_of(body)] = time.monotonic()

        return Handler


def _completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    prompt_tokens = len(prompt_of(body).split())
    completion_tokens = len(reply.text.split())
    content = reply.text if reply.content is None else reply.content
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reply.reasoning is not None:
        message[reply.reasoning_field] = reply.reasoning
    return {
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "loopback"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _reasoning(chars: int) -> str:
    """``chars`` characters of plain reasoning text, with no verdict or tag in it."""
    sentence = "Weighing the two answers on accuracy, completeness and the user's request. "
    return (sentence * (chars // len(sentence) + 1))[:chars]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Scripted OpenAI-compatible server for every ralign task: the R-Align "
        "GenRM always picks A and its meta-judge always says Correct; the HelpSteer3-Atomic "
        "GenRM lists two reasons, which the RC MetaJudge matches to the first two rationales; "
        "the extractor lists two reasons of any rationale, typed evidence and generic; "
        "the label benchmarks' GenRM prefers Assistant A and rates every answer 8."
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument(
        "--reasoning-chars",
        type=int,
        default=0,
        help="open every answer with this many characters of reasoning (answers of realistic "
        "length for benchmarks; the verdicts stay the same)",
    )
    args = parser.parse_args(argv)
    responder = stand_in
    if args.reasoning_chars:
        reasoning = _reasoning(args.reasoning_chars)
        responder = lambda body: f"{reasoning}\n{stand_in(body)}"  # noqa: E731
    with LoopbackServer(responder, args.latency) as server:
        print(server.base_url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            sys.exit(0)


if __name__ == "__main__":
    main()
