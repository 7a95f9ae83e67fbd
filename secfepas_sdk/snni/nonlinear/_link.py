"""Flight ordering shared by the non-linear protocols.

Both parties often have something to send in the same step. Over a stream
socket two large simultaneous sends can deadlock (both kernel buffers fill),
so a symmetric exchange is ordered: the client sends first, the server
receives, then sends back.
"""

from __future__ import annotations

from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.party import Party


def exchange(channel: Channel, party: Party, payload: bytes) -> bytes:
    """Send ``payload``, return the peer's equally long payload."""
    if party is Party.CLIENT:
        channel.send(payload)
        return channel.recv_exact(len(payload))
    peer = channel.recv_exact(len(payload))
    channel.send(payload)
    return peer
