"""The client side of polling an inference server: capped, timed HTTP fetches with its credentials.

``fetch`` gets one body within a deadline and a size cap, ``access`` keeps a server's token, headers
and TLS context current, and ``reader`` polls one configured server: fetch, pick the adapter, parse.
"""
