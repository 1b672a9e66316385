"""Poll every source on its interval, survive every failure, and compose immutable snapshots.

``supervise`` is the guard every loop iteration runs in, ``servers`` the per-server state,
``gpus`` the GPU loops' state, ``compose`` the pure function from all of it to a ``Snapshot``, and
``poller`` the loops that tie them together.
"""
