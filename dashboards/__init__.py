"""Grafana dashboards for inference-throughput-exporter, generated from code.

``python -m dashboards`` writes ``dashboards/*.json``; ``python -m dashboards --check`` fails when
the committed JSON is stale. ``dashboards/README.md`` says how to import and provision them.
"""
