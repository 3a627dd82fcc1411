"""A threaded loopback TCP proxy counting the bytes a registry sends back, for the resume and
live-progress cases. It can hold, throttle or drop the transfer at a byte count. Test code only.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Self


class ByteCountingProxy:
    """A loopback TCP proxy to ``127.0.0.1:upstream_port`` counting bytes sent back to clients.

    ``served`` is every byte forwarded from the upstream to clients, over all connections.
    ``hold_at(n)``: forwarding to clients stops once ``served`` reaches ``n`` until
    ``release()``. ``drop_at(n)``: the connection carrying byte ``n`` is closed there (once).
    ``rate``: bytes per second per connection (None = unthrottled).
    ``requests`` keeps the request heads clients sent (for failure messages).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self.served = 0
        self.requests: list[str] = []
        self.rate: float | None = None
        self._hold: int | None = None
        self._drop: int | None = None
        self._released = threading.Event()
        self._released.set()
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def hold_at(self, n: int | None) -> None:
        with self._lock:
            self._hold = n
            if n is None:
                self._released.set()
            else:
                self._released.clear()

    def release(self) -> None:
        self.hold_at(None)

    def drop_at(self, n: int | None) -> None:
        with self._lock:
            self._drop = n

    def wait_served(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.served < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.served} of {n} bytes served in {timeout}s; "
                                     f"requests: {self.request_lines()}")
            time.sleep(0.01)

    def request_lines(self) -> list[str]:
        """Request lines and Range headers seen, for failure messages."""
        out = []
        for head in self.requests:
            for line in head.split("\r\n"):
                if line.startswith(("GET ", "HEAD ", "PUT ", "POST ", "PATCH ")) or \
                        line.lower().startswith("range:"):
                    out.append(line)
        return out

    def close(self) -> None:
        self._closed.set()
        self._released.set()
        _close(self._listener)  # shutdown wakes the accept() blocked in the accept thread
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------
    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            self._spawn(self._pump_up, client, upstream)
            self._spawn(self._pump_down, upstream, client)

    def _pump_up(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                if len(self.requests) < 10_000:
                    text = data[:4096].decode("latin-1")
                    if text[:8].split(" ")[0] in ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"):
                        self.requests.append(text)
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _shutdown(upstream)

    def _pump_down(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(65536):
                view = memoryview(data)
                while view:
                    n = self._allow(len(view))
                    if n < 0:
                        return
                    client.sendall(view[:n])
                    with self._lock:
                        self.served += n
                    view = view[n:]
        except OSError:
            pass
        finally:
            _close(client)
            _close(upstream)

    def _allow(self, want: int) -> int:
        """How many bytes may go now (blocking while held); -1 to drop the connection."""
        while True:
            if self._closed.is_set():
                return -1
            with self._lock:
                served, hold, drop = self.served, self._hold, self._drop
                if drop is not None and served >= drop:
                    self._drop = None
                    return -1
            if hold is not None and served >= hold:
                self._released.wait(0.05)
                continue
            n = want
            for limit in (hold, drop):
                if limit is not None:
                    n = min(n, limit - served)
            if self.rate:
                n = min(n, 16384)
                time.sleep(n / self.rate)
            return max(n, 1)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _close(sock: socket.socket) -> None:
    """Shut down first: a bare close() neither sends FIN nor wakes another thread's recv()."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
