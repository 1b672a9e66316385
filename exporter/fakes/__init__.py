"""Fakes that stand in for hardware and servers: used by the tests and by ``demo``."""
