"""Secure two-party neural-network inference (Cheetah-style): fixed-point
ring arithmetic, OT, non-linear 2PC protocols and HE linear layers.

Nothing here touches sockets or files at import time; parties talk through a
:class:`~secfepas_sdk.snni.channel.Channel`."""
