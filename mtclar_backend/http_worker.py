"""A gunicorn gthread worker with a lane of its own for ``GET /health``.

Label Studio gives /health one second and then marks the backend disconnected. In a plain gthread worker
every request waits for a free thread, so under a burst of predictions /health queues behind them. Here the
main loop peeks at the first bytes of each request: a health check goes to its own small thread pool, which
no model work ever occupies. A connection whose bytes have not arrived yet is parked on the poller (gunicorn's
own deferral) and routed once they have.
"""

from __future__ import annotations

import socket
from concurrent import futures

from gunicorn.workers.gthread import _DEFER, ThreadWorker

HEALTH_REQUESTS = (b"GET /health", b"GET / ", b"GET /?", b"HEAD /health", b"HEAD / ")


class HealthLaneWorker(ThreadWorker):
    health_threads = 2

    def init_process(self) -> None:
        self.health_pool = futures.ThreadPoolExecutor(max_workers=self.health_threads,
                                                      thread_name_prefix="mtclar-health")
        super().init_process()

    def enqueue_req(self, conn) -> None:
        lane = self._lane(conn)
        if lane == "wait":  # nothing to read yet: let the poller tell us when there is
            parked: futures.Future = futures.Future()
            parked.set_result(_DEFER)
            self.finish_request(conn, parked)
            return
        if lane == "health":
            done = self.health_pool.submit(self.handle, conn)
            done.add_done_callback(lambda fut: self.method_queue.defer(self.finish_request, conn, fut))
            return
        super().enqueue_req(conn)

    def _lane(self, conn) -> str:
        if self.cfg.is_ssl or conn.initialized and conn.parser is not None and conn.parser.unreader.buf.getvalue():
            return "main"  # encrypted bytes, or a request already read ahead: no peeking
        try:
            head = conn.sock.recv(16, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return "main" if conn.data_ready else "wait"
        except OSError:
            return "main"
        return "health" if head.startswith(HEALTH_REQUESTS) else "main"
