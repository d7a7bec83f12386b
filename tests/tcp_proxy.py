"""A loopback TCP proxy that a test can cut and restore (a real outage of the server behind it), slow down
(a delay on every chunk it forwards) or black-hole (open connections stop forwarding but stay open)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._black_holed: set[socket.socket] = set()
        self.port = 0
        self.delay_seconds = 0.0  # added before each forwarded chunk, both directions

    def start(self) -> TcpProxy:
        listener = socket.create_server(("127.0.0.1", self.port))
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        """Refuse new connections and reset the open ones, as a stopped server would."""
        with self._lock:
            listener, self._listener = self._listener, None
            open_sockets, self._sockets = self._sockets, set()
        for sock in [listener, *open_sockets]:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def restore(self) -> None:
        self.start()

    def black_hole(self) -> int:
        """Stop forwarding on every open connection without closing it, as a dead route would (data sent
        into it is dropped); new connections still work. Returns how many connections were swallowed."""
        with self._lock:
            self._black_holed = set(self._sockets)
            return len(self._black_holed) // 2

    def close_black_holed(self) -> None:
        """Reset the black-holed connections, so both ends finally see them fail."""
        with self._lock:
            holed, self._black_holed = self._black_holed, set()
            self._sockets -= holed
        for sock in holed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if self.delay_seconds:
                    time.sleep(self.delay_seconds)
                if source not in self._black_holed:
                    sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
