"""A soak run of Tessera through Redis and PostgreSQL restarts: ``python -m tests.soak --help``.

Not part of the pytest run (no ``test_`` modules here): it takes minutes and starts its own
servers. See :mod:`tests.soak.__main__` for what it does and checks.
"""
