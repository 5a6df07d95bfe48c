"""Can `serve` listen on HOST:PORT? Asked before start-up work, so a busy port is one line
(contract §14) rather than a traceback after the migrations and the worker have started."""

from __future__ import annotations

import errno
import socket


def port_problem(host: str, port: int) -> str | None:
    """Bind (and release) HOST:PORT as aiohttp will; why it cannot be bound, in one line.
    run_app's own bind error (`listen_problem`) stays the backstop for a race."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        return f"HOST={host!r} cannot be resolved ({error.strerror}): fix HOST or --host."
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                return listen_problem(host, port, error)
    return None


def listen_problem(host: str, port: int, error: OSError) -> str:
    where = f"{host}:{port}"
    if error.errno == errno.EADDRINUSE:
        return (
            f"PORT {where} is already in use: stop what listens there, or choose another "
            "port (PORT=8081, or --port 8081)."
        )
    return f"HOST/PORT: cannot listen on {where} ({error.strerror}): choose another."
