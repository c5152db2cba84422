"""Demo applications built on Tessera's public interfaces only (HTTP, metadata, tokens)."""
