"""Transports that feed a stream core: each only moves bytes."""
