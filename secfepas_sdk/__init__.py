"""secfepas_sdk: privacy-preserving pain assessment for smart cameras.

The camera (``secfepas_sdk.camera``) and an edge server
(``secfepas_sdk.edge``) run secure two-party CNN inference: the edge never
sees the video or the result, and the camera never sees the model weights.
Importing this package is cheap: subpackages load their heavy dependencies
only when used.
"""

from secfepas_sdk.errors import SecfepasError

__version__ = "0.1.0"

__all__ = ["SecfepasError", "__version__"]
