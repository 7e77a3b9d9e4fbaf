"""Checks of user-given paths and files, run before any expensive work.

Each raises ``InputError`` with one line that says what is wrong and what to do; the CLI turns it
into exit code 2. Nothing here creates or writes anything.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from interp.errors import InputError


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _writable_below(path: Path, what: str) -> None:
    """Every existing ancestor is a folder and the nearest one is writable."""
    for parent in path.absolute().parents:
        if parent.exists() and not parent.is_dir():
            raise InputError(f"{what} {path} is under {parent}, which is a file, not a folder")
    base = _nearest_existing(path.parent if not path.exists() else path)
    if not os.access(base, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path}: cannot write into {base} (permission denied)")


def _path_problem(path: Path, what: str) -> None:
    """A name the file system cannot hold (too long) or a chain of links that never ends."""
    for part in path.parts:
        if len(os.fsencode(part)) > 255:
            raise InputError(f"{what}: a folder or file name longer than 255 bytes; shorten it")
    try:
        path.resolve(strict=False)
    except (OSError, RuntimeError) as e:  # ELOOP: links that point at each other
        raise InputError(f"{what} {str(path)[:200]}: {getattr(e, 'strerror', None) or e}") from None


def out_folder(path: Path, what: str = "--out") -> Path:
    """A folder results will be written into (created later by the writer)."""
    path = Path(path)
    _path_problem(path, what)
    if str(path).strip() in ("", "."):
        raise InputError(
            f"{what} must name a folder other than the current one (got {str(path)!r}): "
            "results would be mixed with your files"
        )
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} is a file; give a folder")
    _writable_below(path, what)
    return path


def out_file(path: Path, what: str = "--out") -> Path:
    """A file that will be written (its parent folders are created by the writer)."""
    path = Path(path)
    _path_problem(path, what)
    if str(path).strip() in ("", "."):
        raise InputError(f"{what} must name a file (got {str(path)!r})")
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder; give a file name such as {path}/out.json")
    _writable_below(path, what)
    return path


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of ``path``; a clear error for a missing, unreadable or binary file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror}") from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(
            f"{what} {path} is not a UTF-8 text file ({e.reason} at byte {e.start})"
        ) from e
    if "\x00" in text:
        raise InputError(f"{what} {path} is not a text file (it holds NUL bytes)")
    return text


def listen_address(host: str, port: int) -> None:
    """A host name that resolves and a port in 0..65535 (0 = any free port)."""
    if not 0 <= port <= 65535:
        raise InputError(f"--port must be in 0..65535, got {port}")
    try:
        socket.getaddrinfo(host, port)
    except (socket.gaierror, UnicodeError) as e:
        raise InputError(f"--host {host!r} does not resolve to an address ({e})") from e


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HTTP2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an empty SETTINGS frame


def reachable(address: str, timeout: float = 5.0) -> None:
    """A ``host:port`` that accepts a TCP connection within ``timeout`` seconds and answers an
    HTTP/2 preface with a SETTINGS frame, as the Ray head's gRPC server does (any other
    listener is refused in seconds instead of Ray's minutes of retries)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"address {address!r} must be HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as conn:
            conn.settimeout(timeout)
            conn.sendall(HTTP2_PREFACE + HTTP2_SETTINGS)
            answer = b""
            while len(answer) < 9:
                chunk = conn.recv(9 - len(answer))
                if not chunk:
                    break
                answer += chunk
    except TimeoutError:
        answer = b""
    except OSError as e:
        raise InputError(
            f"cannot reach {address} within {timeout:.0f} s ({e.strerror or e}); is the Ray head "
            "running there (`ray start --head`)?"
        ) from None
    if len(answer) < 9 or answer[3] != 0x04:  # a gRPC (HTTP/2) server answers with SETTINGS
        seen = repr(answer[:24]) if answer else "no answer"
        raise InputError(
            f"{address} accepts connections but does not speak gRPC, the Ray head's protocol "
            f"({seen} within {timeout:.0f} s); give the Ray head's HOST:PORT (default port 6379)"
        )
