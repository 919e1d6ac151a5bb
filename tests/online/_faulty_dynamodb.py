"""A loopback HTTP proxy in front of moto that records DynamoDB calls and injects faults.

Point a boto3 client's ``endpoint_url`` at :attr:`FaultyProxy.url`. For every request the proxy
asks its ``policy`` (operation name, JSON body) for an action:

``forward``     pass the request to moto unchanged
``throttle``    answer 400 ThrottlingException without forwarding
``capacity``    answer 400 ProvisionedThroughputExceededException without forwarding
``denied``      answer 400 AccessDeniedException without forwarding
``partial``     (BatchWriteItem/BatchGetItem) forward only the first half of the items or keys
                and return the rest as UnprocessedItems / UnprocessedKeys
``unprocessed`` (BatchWriteItem/BatchGetItem) forward nothing, return everything as unprocessed

It serves only 127.0.0.1 and stops with :meth:`close`.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Policy = Callable[[str, dict[str, Any]], str]
_ERRORS = {
    "throttle": ("ThrottlingException", "Rate of requests exceeds the allowed throughput."),
    "capacity": (
        "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded.",
    ),
    "denied": ("AccessDeniedException", "User is not authorized to perform this action."),
}


@dataclass(frozen=True)
class Call:
    op: str
    items: int  # items (BatchWriteItem) or keys (BatchGetItem) in the request, else 1
    action: str
    body: dict[str, Any]


def forward_all(op: str, body: dict[str, Any]) -> str:
    return "forward"


def cycle_faults(plan: dict[str, list[str]]) -> Policy:
    """A policy that gives the n-th call of an operation the action ``plan[op][n % len]``.

    Deterministic whatever the thread interleaving: once an operation was called ``len(plan[op])``
    times, every action of its plan has been applied.
    """
    counters: Counter[str] = Counter()
    lock = threading.Lock()

    def policy(op: str, body: dict[str, Any]) -> str:
        actions = plan.get(op)
        if not actions:
            return "forward"
        with lock:
            n = counters[op]
            counters[op] += 1
        return actions[n % len(actions)]

    return policy


def _count(op: str, body: dict[str, Any]) -> int:
    if op == "BatchWriteItem":
        return sum(len(v) for v in body.get("RequestItems", {}).values())
    if op == "BatchGetItem":
        return sum(len(v.get("Keys", [])) for v in body.get("RequestItems", {}).values())
    return 1


class FaultyProxy:
    def __init__(self, upstream: str, policy: Policy = forward_all) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.policy = policy
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def actions(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter((c.op, c.action) for c in self.calls)

    def of(self, op: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.op == op]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    def forward(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: FaultyProxy

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's signature
        pass

    def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name in ("Content-Type", "x-amzn-RequestId", "x-amz-crc32"):
            if name in headers:
                self.send_header(name, headers[name])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reply_json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self._reply(status, {"Content-Type": "application/x-amz-json-1.0"}, body)

    def do_POST(self) -> None:  # noqa: N802 - the base's naming
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        op = (self.headers.get("X-Amz-Target") or "").rsplit(".", 1)[-1]
        body = json.loads(raw) if raw else {}
        action = self.owner.policy(op, body)
        if action in ("partial", "unprocessed") and op not in ("BatchWriteItem", "BatchGetItem"):
            action = "forward"
        self.owner.record(Call(op, _count(op, body), action, body))
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")
        }
        if action in _ERRORS:
            code, message = _ERRORS[action]
            self._reply_json(400, {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message})
            return
        if action == "forward":
            status, out_headers, out = self.owner.forward(self.path, headers, raw)
            self._reply(status, out_headers, out)
            return
        ((table, request),) = body["RequestItems"].items()
        if op == "BatchWriteItem":
            keep_n = len(request) // 2 if action == "partial" else 0
            keep, rest = request[:keep_n], request[keep_n:]
            result: dict[str, Any] = {"UnprocessedItems": {}}
            if keep:
                forwarded = json.dumps({**body, "RequestItems": {table: keep}}).encode()
                status, _, out = self.owner.forward(self.path, headers, forwarded)
                result = json.loads(out)
                if status != 200:
                    self._reply_json(status, result)
                    return
            unprocessed = result.setdefault("UnprocessedItems", {})
            unprocessed[table] = unprocessed.get(table, []) + rest
        else:
            keys = request["Keys"]
            keep_n = len(keys) // 2 if action == "partial" else 0
            keep, rest = keys[:keep_n], keys[keep_n:]
            result = {"Responses": {table: []}, "UnprocessedKeys": {}}
            if keep:
                forwarded = json.dumps({**body, "RequestItems": {table: {**request, "Keys": keep}}}).encode()
                status, _, out = self.owner.forward(self.path, headers, forwarded)
                result = json.loads(out)
                if status != 200:
                    self._reply_json(status, result)
                    return
            unprocessed = result.setdefault("UnprocessedKeys", {})
            previous = unprocessed.get(table, {}).get("Keys", [])
            unprocessed[table] = {**request, "Keys": previous + rest}
        self._reply_json(200, result)
