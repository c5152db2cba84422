"""The authorization endpoint's domain (RFC 6749 §3.1, §4.1.1-4.1.2, §4.2.1-4.2.2).

``request``: the authorization request once checked; ``checks``: the ordered checks that establish
it; ``response_modes``: how answers go back to the client; ``answer``: the grant's answer to an
approved request. The endpoints (``endpoints/authorize.py``, ``endpoints/consent.py``) only run
these in order. This package imports nothing itself, so that grants can use ``request`` without a
cycle.
"""
