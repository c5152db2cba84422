"""A ``--workers`` worker that fails while the supervisor is already stopping it says why in one line."""

import subprocess
import sys
import textwrap

from tests.support.servers import free_port

# A worker whose start-up cannot reach PostgreSQL, and whose stop signal (the supervisor's, sent
# because another worker failed first) lands while aiohttp is still cleaning up: the reason must
# not be buried under a GracefulExit or "Event loop stopped before Future completed" traceback.
_WORKER = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    import asyncpg
    from aiohttp import web
    from shared import serving

    async def slow_to_close():
        try:
            yield
        finally:
            await asyncio.sleep(0.5)

    async def start(app):
        generator = slow_to_close()
        await generator.__anext__()
        app["generator"] = generator
        asyncio.get_running_loop().call_later(0.2, os.kill, os.getpid(), signal.SIGTERM)
        await asyncpg.connect("postgresql://postgres@127.0.0.1:1/postgres")

    def factory():
        app = web.Application()
        app.on_startup.append(start)
        return app

    port = int(sys.argv[1])
    serving._worker(factory, serving.Listener(host="127.0.0.1", port=port, workers=2), os.getppid())
    """
)


def test_a_worker_stopped_while_failing_explains_itself_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WORKER, str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
        env={"TESSERA_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/postgres", "PATH": ""},
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert "tessera: cannot connect to PostgreSQL at 127.0.0.1:1" in result.stderr, result.stderr
