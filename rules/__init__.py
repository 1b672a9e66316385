"""Prometheus recording and alerting rules for inference-throughput-exporter, generated from code.

``python -m rules`` writes ``rules/recording.yml`` and ``rules/alerts.yml`` from the thresholds and
windows in ``rules/settings.yml``; ``python -m rules --check`` fails when the committed files are stale.
"""
