"""Benchmarks of the exporter, each against a baseline measured in the same run (``python -m bench.run``)."""
