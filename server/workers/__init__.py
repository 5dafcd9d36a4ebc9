"""``hypertab serve --workers N``: one supervisor process, N hub processes on one port.

How it works: the supervisor binds ``host:port`` itself (so a port in use is reported once,
``--port 0`` picks one port for all, and the port stays bound while a worker restarts), one
listening socket per worker in a ``SO_REUSEPORT`` group (:mod:`server.workers.listen`: the
kernel spreads connections evenly), then starts N workers, each ``python -m server.cli serve
--worker-fd FD``: a whole hub (uvloop, its own writer tasks, its own broker connection) that
accepts on its inherited socket. They share the data directory and Redis like any hub
processes (docs/architecture.md). The supervisor prints the URL once every worker listens,
starts a replacement when one dies (with a backoff, :mod:`server.workers.backoff`), and on
SIGTERM or SIGINT sends SIGTERM to every worker, each of which stops gracefully (queued
batches committed and acknowledged, sockets closed with 1001), then exits 0.
"""
