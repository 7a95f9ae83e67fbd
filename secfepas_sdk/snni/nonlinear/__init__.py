"""Non-linear two-party protocols on additive shares: millionaires, DReLU,
ReLU, truncation and max-pooling (CrypTFlow2-style, over
SoftSpokenOT, IKNP or Ferret OT extension)."""

from secfepas_sdk.snni.nonlinear.engine import NonlinearEngine

__all__ = ["NonlinearEngine"]
