"""Transports. Each module adapts one chat platform to ``ChatAdapter``."""
