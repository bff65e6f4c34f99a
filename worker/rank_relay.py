"""The line between rank 0 of a multi-process job and the worker's job child.

The job child (``worker.runner``) cannot hand its report pipe to processes torchrun starts, so it
listens on localhost (``RelayListener``) with a random authkey that only its own subprocesses see
(in their environment), and rank 0 connects (``connect_rank0``). Rank 0 then sends the same
``(kind, payload)`` reports a one-process child sends down its pipe; the child sends back one
message, ``("stop", {})``, when the job is to checkpoint and stop, which rank 0 reads in
``should_stop`` (``RelayStop``). The other ranks send nothing: the engine reports from rank 0 only.
"""
from __future__ import annotations

import os
import queue
import secrets
import threading
from multiprocessing.connection import Client, Connection, Listener
from typing import Optional

ADDRESS_ENV = "DDPM_WORKER_RELAY"  # host:port of the child's listener
AUTHKEY_ENV = "DDPM_WORKER_RELAY_KEY"  # hex; never logged, never on a command line
STOP = "stop"


class RelayListener:
    """The child's side: ``env()`` for the subprocesses, ``wait(timeout)`` for rank 0's line."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._listener = Listener(("127.0.0.1", 0), authkey=self._key)
        self._accepted: "queue.Queue[Connection]" = queue.Queue(1)
        self._thread = threading.Thread(target=self._accept, name="rank-relay-accept", daemon=True)
        self._thread.start()

    def env(self) -> dict[str, str]:
        host, port = self._listener.address
        return {ADDRESS_ENV: f"{host}:{port}", AUTHKEY_ENV: self._key.hex()}

    def _accept(self) -> None:
        while True:
            try:
                conn = self._listener.accept()
            except OSError:  # closed: the job ended before (or after) rank 0 connected
                return
            except Exception:  # noqa: BLE001 - a stray client that failed the handshake
                continue
            self._accepted.put(conn)
            return

    def wait(self, timeout_s: float) -> Optional[Connection]:
        """Rank 0's connection, or None when it has not connected within ``timeout_s``."""
        try:
            return self._accepted.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def close(self) -> None:
        try:
            self._listener.close()
        except OSError:
            pass


def connect_rank0(timeout_s: float = 60.0) -> Connection:
    """Rank 0's side: connect to the job child named in the environment (set by the child)."""
    import socket

    host, _, port = os.environ[ADDRESS_ENV].rpartition(":")
    key = bytes.fromhex(os.environ[AUTHKEY_ENV])
    socket.setdefaulttimeout(timeout_s)  # the connect and the handshake; restored below
    try:
        return Client((host, int(port)), authkey=key)
    finally:
        socket.setdefaulttimeout(None)


def in_worker_job() -> bool:
    """True in a process the worker's job child started (it set the relay's address)."""
    return ADDRESS_ENV in os.environ


class RelayStop:
    """``is_set()`` like the one-process child's stop event: True once the child sent ``stop``
    (read from the connection without blocking; only the training thread calls it)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._set = False

    def is_set(self) -> bool:
        if self._set:
            return True
        try:
            while self._conn.poll(0):
                kind, _ = self._conn.recv()
                self._set = self._set or kind == STOP
        except (EOFError, OSError):
            self._set = True  # the child is gone: checkpoint and stop
        return self._set
