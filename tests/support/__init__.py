"""What the tests share besides fixtures. Test modules (and the load and soak runs) import helpers
from here; a ``conftest.py`` only defines fixtures, importing what it needs from here too.

- :mod:`tests.support.services`: where the suite finds PostgreSQL and Redis, and throwaway databases;
- :mod:`tests.support.servers`: the servers under test: settings, test credentials, live servers;
- :mod:`tests.support.flow`: a browser's part of the authorization-code flow;
- :mod:`tests.support.programs`: the programs some tests run (Chromium, nginx, redis-server, wrk,
  Node.js), or one line saying how to install the missing one;
- :mod:`tests.support.refresh_families`: what the database says about refresh-token families.
"""
