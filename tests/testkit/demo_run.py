"""One measured secure inference of the bundled demo model (setup included), two
in-memory peers: the per-op-kind traffic that inspect's estimate is checked against."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from secfepas_sdk.cli.selftest import traffic_by_kind
from secfepas_sdk.models.bundled import demo_model_path
from secfepas_sdk.models.package import PrivateModel, load_private
from secfepas_sdk.snni.channel import run_pair
from secfepas_sdk.snni.runtime import ClientRuntime, ServerRuntime


def measured_demo_run(
    seed: int, *, after_setup: Callable[[ClientRuntime], None] | None = None
) -> tuple[PrivateModel, dict[str, dict[str, int]]]:
    """(the demo package, bytes each way and rounds per op kind) for one inference on a
    seeded random input; ``after_setup`` may inspect the camera's runtime."""
    private = load_private(demo_model_path())
    client = ClientRuntime(private.plan)
    server = ServerRuntime(private.plan, private.weights)
    x = np.random.default_rng(seed).standard_normal(private.plan.input_shape).astype(np.float32)

    def camera(ch: Any) -> dict[str, dict[str, int]]:
        client.setup(ch)
        if after_setup is not None:
            after_setup(client)
        client.infer(ch, x)
        return traffic_by_kind(private.plan, ch.stats.as_dict())

    def edge(ch: Any) -> None:
        server.setup(ch)
        server.infer(ch)

    try:
        measured, _ = run_pair(camera, edge)
    finally:
        client.close()
        server.close()
    return private, measured
