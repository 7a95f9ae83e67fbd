"""The camera logs peer text only through safe_text: an edge's error message with
line breaks or terminal escapes cannot forge or garble a camera log line, and no
log line says whether a slot carried a face or the dummy."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
import pytest

from secfepas_sdk.camera.client import SecureInferenceClient
from secfepas_sdk.camera.pipeline import CameraPipeline
from secfepas_sdk.camera.testing import SyntheticSource
from secfepas_sdk.errors import ConnectionLostError, PeerError
from secfepas_sdk.protocol.transport import TlsFiles

HOSTILE = "edge went away\r\n2026-12-01 INFO secfepas_sdk.camera: all clear\x1b[2J\u202e"


class _RefusingEdge(SecureInferenceClient):
    """As if the edge had answered every inference with Error{busy, HOSTILE}."""

    def __init__(self, tls: TlsFiles, error: Exception) -> None:
        super().__init__(("127.0.0.1", 1), tls, "demo-pain-cnn")
        self.error = error

    async def infer(self, tensor: Any, **kwargs: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        PeerError(f"the edge ended the session (busy): {HOSTILE}", "busy"),
        ConnectionLostError(HOSTILE, "connection_lost"),
    ],
)
def test_peer_text_in_a_failed_slot_is_escaped(
    tls: TlsFiles, caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    pipeline = CameraPipeline(SyntheticSource(count=1), _RefusingEdge(tls, error))
    x = np.zeros((1, 3, 8, 8), np.float32)
    with caplog.at_level(logging.DEBUG, logger="secfepas_sdk"):
        assert asyncio.run(pipeline._infer(x, None, what="slot 3")) is None
    (record,) = [r for r in caplog.records if r.name.startswith("secfepas_sdk.camera")]
    line = record.getMessage()
    assert line.startswith("slot 3 not analysed: ")
    assert not any(c in line for c in "\r\n\x1b\u202e"), line
    assert "\\x0d\\x0a2026-12-01 INFO" in line  # visible, not executed
    assert "dummy" not in line and "face" not in line
    assert pipeline.stats.errors == 1
