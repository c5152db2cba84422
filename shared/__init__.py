"""Code both Tessera servers need, and that other resource teams import to validate tokens themselves."""
