"""Storage, one class per aggregate. SQL and Redis commands live only here; callers get frozen dataclasses."""
