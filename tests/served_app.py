"""The Django ASGI app served by uvicorn on loopback, in a thread of the test process (so it
shares the test database and settings). Callers need ``transactional_db``: the server opens
its own database connections and sees only committed data."""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def served_app() -> Iterator[str]:
    """Yields the server's base URL (``http://127.0.0.1:<port>``); stops it afterwards."""
    import uvicorn

    from orgbilling.asgi import application

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            application, lifespan="off", log_level="warning", access_log=False, timeout_keep_alive=30
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
