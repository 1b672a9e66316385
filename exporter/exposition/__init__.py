"""Render snapshots into the Prometheus text format and OpenMetrics, once per snapshot, not per scrape."""
