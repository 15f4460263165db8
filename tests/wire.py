"""Round trips to PostgreSQL counted on the wire: a unix-socket proxy in front of the test database.

A test points ``DATABASE_URL`` at the proxy (``wire.url``) and everything the application sends
passes through it, untouched. pg8000 sends an exchange and waits for the server's answer before
sending the next one, so each burst from the client that follows an answer is one round trip.
A count, not a timing: the same on any machine.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa


class Wire:
    def __init__(self, database_url: str, path: str) -> None:
        url = sa.engine.make_url(database_url)
        self._target = str(url.query["unix_sock"])
        self.url = url.update_query_dict({"unix_sock": path}).render_as_string(hide_password=False)
        self._lock = threading.Lock()
        self._trips = 0
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(16)
        threading.Thread(target=self._accept, daemon=True, name="wire-proxy").start()

    @property
    def trips(self) -> int:
        with self._lock:
            return self._trips

    @contextmanager
    def counting(self) -> Iterator[list[int]]:
        """``with wire.counting() as trips:`` — ``trips[0]`` is the count once the block ends."""
        counted: list[int] = []
        before = self.trips
        yield counted
        counted.append(self.trips - before)

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(self._target)
            answered = [True]  # the client's first burst is a round trip too
            threading.Thread(target=self._from_client, args=(client, server, answered), daemon=True).start()
            threading.Thread(target=self._from_server, args=(server, client, answered), daemon=True).start()

    def _from_client(self, client: socket.socket, server: socket.socket, answered: list[bool]) -> None:
        with client, server:
            try:
                while data := client.recv(65536):
                    with self._lock:
                        if answered[0]:
                            self._trips += 1
                            answered[0] = False
                    server.sendall(data)
            except OSError:
                pass

    def _from_server(self, server: socket.socket, client: socket.socket, answered: list[bool]) -> None:
        try:
            while data := server.recv(65536):
                with self._lock:
                    answered[0] = True
                client.sendall(data)
        except OSError:
            pass
        finally:
            client.close()
