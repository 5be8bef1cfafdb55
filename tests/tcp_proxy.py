"""A small TCP proxy on loopback that can cut a connection after N bytes, as a flaky link
would: tests of resumable uploads put it between a client and a real server.

    with TcpProxy("127.0.0.1", port) as proxy:
        proxy.cut_after(500_000)      # the next 500 kB client→server, then the link drops
        ... talk to f"http://127.0.0.1:{proxy.port}" ...
"""

import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._budget: int | None = None   # client→server bytes left before the cut
        self.cuts = 0
        self._sockets: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, nbytes: int) -> None:
        """Drop the connection carrying the byte that exhausts `nbytes` (counted from now,
        client to server); later connections pass untouched."""
        with self._lock:
            self._budget = nbytes

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upward: bool) -> None:
        try:
            while data := source.recv(65536):
                if upward and not self._spend(len(data)):
                    allowed = self._take_rest()
                    if allowed:
                        sink.sendall(data[:allowed])
                    self._cut(source, sink)
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _spend(self, nbytes: int) -> bool:
        with self._lock:
            if self._budget is None or nbytes <= self._budget:
                if self._budget is not None:
                    self._budget -= nbytes
                return True
            return False

    def _take_rest(self) -> int:
        with self._lock:
            rest, self._budget = self._budget or 0, None
            self.cuts += 1
            return rest

    def _cut(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self) -> "TcpProxy":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
