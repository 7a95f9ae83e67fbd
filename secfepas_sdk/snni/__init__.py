"""Secure two-party neural-network inference (Cheetah-style): fixed-point
ring arithmetic, OT, non-linear 2PC protocols and HE linear layers.

The engine does no I/O: it knows nothing of sockets, files, subprocesses or
environment variables. The two parties talk through a
:class:`~secfepas_sdk.snni.channel.Channel` (the socket and TLS channels live
in :mod:`secfepas_sdk.protocol.transport`), and every setting arrives as an
argument from the caller (the edge passes its ``EdgeSettings``).
tests/test_import_contract.py enforces this."""
