"""A TCP proxy that forwards, stalls or cuts connections: faults on demand for tests.

Put it between a client and a real server (PostgreSQL, Redis) and switch it
while the client runs:

    with TCPProxy(upstream=("127.0.0.1", 5432)) as proxy:
        ...                # point the client at proxy.host, proxy.port
        proxy.stall()      # a hung server: connections stay open, nothing passes
                           # either way, new ones are accepted and held
        proxy.forward()    # traffic flows again, the held bytes first
        proxy.cut()        # every open connection is closed (both ends) once;
                           # new ones are forwarded as before
        proxy.refuse()     # a server that is down: open connections are closed
                           # and new ones refused (the port is closed)
        proxy.forward()    # the server is back, on the same port

A stall holds bytes rather than dropping them, as a hung server's kernel
would: when the proxy forwards again, both sides carry on where they stopped.
Only threads (one accepting, one per connection), so it serves a pytest test
and a load harness alike. It listens on 127.0.0.1 only.
"""

import contextlib
import select
import selectors
import socket
import threading

HOST = "127.0.0.1"
CHUNK = 65536
# How often idle threads look again at the proxy's mode; only the speed of
# stop() and refuse() depends on it, never what passes through.
POLL_SECONDS = 0.05
CONNECT_SECONDS = 5.0


class TCPProxy:
    def __init__(self, upstream: tuple[str, int], *, port: int = 0):
        self.upstream = upstream
        self.host = HOST
        self.port = port  # 0: a free port, fixed at start() and kept across refuse()
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self._stopped = threading.Event()
        self._listener: socket.socket | None = None
        self._links: set[_Link] = set()
        self._accepted = 0
        self._threads: list[threading.Thread] = []

    # Lifecycle

    def start(self) -> "TCPProxy":
        self._listen()
        self._spawn(self._accept_loop, "tcp-proxy-accept")
        return self

    def stop(self) -> None:
        """Close everything and wait for the proxy's threads."""
        self._stopped.set()
        self._flowing.set()  # releases held connections, which see the stop and close
        self._close_listener()
        self.cut()
        for thread in list(self._threads):
            thread.join(timeout=5)

    def __enter__(self) -> "TCPProxy":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # Faults

    def forward(self) -> None:
        """Normal service: accept and forward (again, after a stall or refuse())."""
        with self._lock:
            reopen = self._listener is None and not self._stopped.is_set()
        if reopen:
            self._listen()
        self._flowing.set()

    def stall(self) -> None:
        """Accept connections and keep them open, but pass nothing either way."""
        self._flowing.clear()

    def cut(self) -> None:
        """Close every open connection, at both ends."""
        with self._lock:
            links, self._links = self._links, set()
        for link in links:
            link.close()

    def refuse(self) -> None:
        """Close every open connection and refuse new ones until forward()."""
        self._close_listener()
        self.cut()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._links)

    @property
    def accepted_connections(self) -> int:
        """Connections accepted since start(), open or not."""
        with self._lock:
            return self._accepted

    # Inside

    def _spawn(self, target, name: str, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [alive for alive in self._threads if alive.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Rebinding the same port after refuse() while old connections sit in TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(128)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener

    def _close_listener(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() first: the accepting thread's select() holds the socket
            # open after close(), and the kernel would go on accepting meanwhile.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:  # refusing: the port is closed
                self._stopped.wait(POLL_SECONDS)
                continue
            try:
                ready, _, _ = select.select([listener], [], [], POLL_SECONDS)
                if not ready:
                    continue
                client, _ = listener.accept()
            except OSError:
                continue  # closed by refuse() or stop() meanwhile
            client.setblocking(True)
            link = _Link(self, client)
            with self._lock:
                self._links.add(link)
                self._accepted += 1
            self._spawn(link.run, "tcp-proxy-link")

    def _forget(self, link: "_Link") -> None:
        with self._lock:
            self._links.discard(link)

    def _wait_until_flowing(self, link: "_Link") -> bool:
        """Hold a stalled connection; False once it was closed or the proxy stopped."""
        while not self._flowing.wait(POLL_SECONDS):
            if link.closed or self._stopped.is_set():
                return False
        return not (link.closed or self._stopped.is_set())


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, proxy: TCPProxy, client: socket.socket):
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.closed = False
        self._lock = threading.Lock()

    def run(self) -> None:
        try:
            # A connection accepted during a stall is held before it even
            # reaches the server: a hung server's kernel accepts it too.
            if not self.proxy._wait_until_flowing(self):
                return
            try:
                upstream = socket.create_connection(self.proxy.upstream, timeout=CONNECT_SECONDS)
            except OSError:
                return  # the server itself is down: the client sees its connection closed
            upstream.settimeout(None)
            with self._lock:
                if self.closed:
                    upstream.close()
                    return
                self.upstream = upstream
            self._pump()
        finally:
            self.close()
            self.proxy._forget(self)

    def _pump(self) -> None:
        other = {self.client: self.upstream, self.upstream: self.client}
        with selectors.DefaultSelector() as selector:
            for sock in other:
                selector.register(sock, selectors.EVENT_READ)
            while not self.closed:
                if not self.proxy._wait_until_flowing(self):
                    return
                try:
                    for key, _ in selector.select(POLL_SECONDS):
                        data = key.fileobj.recv(CHUNK)
                        if not data:
                            return  # one end closed: close the other
                        other[key.fileobj].sendall(data)
                except OSError:
                    return  # closed by cut() or by either end

    def close(self) -> None:
        with self._lock:
            self.closed = True
            sockets = [self.client, self.upstream]
        for sock in sockets:
            if sock is None:
                continue
            # shutdown() wakes a thread blocked on the socket; close() alone may not.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
