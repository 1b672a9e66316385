"""The exporter's own endpoint security: the exporter-toolkit web config (TLS, mTLS, basic auth, headers)."""
