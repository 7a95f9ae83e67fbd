"""Oblivious transfer: Naor-Pinkas base OTs over ed25519, OT extension
(SoftSpokenOT by default; IKNP, or Ferret silent OT from LPN bootstrapped from
SoftSpokenOT, optional) with a fixed-key AES
correlation-robust hash, and batched random / chosen-message /
correlated / 1-out-of-N OT (see :class:`OtSession`)."""

from secfepas_sdk.snni.ot.session import OtSession

__all__ = ["OtSession"]
