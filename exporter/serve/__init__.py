"""The HTTP side: the running service, its routes, security, the status page and systemd notifications.

A scrape never waits for polling: ``service`` keeps the bytes of the latest snapshot and ``web``
serves them.
"""
