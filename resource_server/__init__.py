"""The Photo Warehouse: a resource server that trusts Tessera's access tokens, validated locally."""
