from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Listener:
    """A real HTTP server on loopback that records every request it gets (path and headers)."""

    server: ThreadingHTTPServer
    requests: list[tuple[str, dict]] = field(default_factory=list)
    routes: dict[str, tuple[int, dict, bytes]] = field(default_factory=dict)  # path prefix -> answer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def authorized(self) -> list[str]:
        return [path for path, headers in self.requests if "authorization" in headers]


@pytest.fixture
def listener_factory():
    made: list[Listener] = []

    def make() -> Listener:
        state: Listener

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                state.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, headers, body = next((answer for prefix, answer in state.routes.items()
                                              if self.path.startswith(prefix)), (404, {}, b"not here"))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        state = Listener(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        made.append(state)
        return state

    yield make
    for listener in made:
        listener.server.shutdown()
        listener.server.server_close()
