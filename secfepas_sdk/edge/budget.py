"""Inferences per loaded model, counted against the model's circuit-privacy budget.

Who holds what: the model package states its budget (docs/snni-he.md, "Circuit
privacy"): noise flooding leaves at most 2^distance_log2 of statistical distance
about the weights over a number of inferences, all cameras together. The
registry works out from the public plan how many inferences that covers; this
module counts the inferences this edge process begins per model (every begun
inference may send replies, so a failed one counts too), warns once at 90 % of
the budget and logs one error when it is spent.

Past the budget the edge serves on by default: stopping a patient monitor is
worse than a statistical bound that weakens slowly (each further inference
adds what one inference adds). ``circuit_privacy_enforce`` makes it refuse
instead. The count lives in this process only: a restart starts from zero, and
replicas behind a balancer each count their own; the Prometheus counter
(summed over replicas, kept across restarts by the monitoring system) is the
deployment's real count (docs/edge.md).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from secfepas_sdk.errors import SecfepasError

__all__ = ["WARN_FRACTION", "BudgetExhausted", "ModelBudget", "PrivacyBudgets"]

log = logging.getLogger(__name__)

WARN_FRACTION = 0.9


class BudgetExhausted(SecfepasError):
    """The model's circuit-privacy budget is spent and the edge enforces it. The camera
    gets ``Error{unknown_model}``: this edge no longer serves the model, and the camera
    does not reconnect in a loop (a fatal code)."""

    code = "unknown_model"


@dataclass(slots=True, kw_only=True)
class ModelBudget:
    """One loaded model's budget and this process's count of its inferences."""

    model_id: str
    version: str
    covered: int  # inferences the budget covers under this plan's flooding
    stated: str  # the manifest's budget, for messages ("2^-40 over 100000000 inferences")
    used: int = 0
    warned: bool = False
    exhausted: bool = False

    @property
    def warn_at(self) -> int:
        return math.ceil(WARN_FRACTION * self.covered)


class PrivacyBudgets:
    """Every loaded model's budget; updated on the event loop only."""

    def __init__(self, budgets: Iterable[ModelBudget], *, enforce: bool = False) -> None:
        self.enforce = enforce
        self._models = {b.model_id: b for b in budgets}

    def __iter__(self) -> Iterator[ModelBudget]:
        return iter(self._models.values())

    def get(self, model_id: str) -> ModelBudget | None:
        return self._models.get(model_id)

    def check(self, model_id: str) -> None:
        """Before a session or an inference: raise BudgetExhausted if it is spent and
        enforced."""
        b = self._models.get(model_id)
        if b is not None and self.enforce and b.used >= b.covered:
            raise BudgetExhausted(
                f"model {model_id!r} is not served: its circuit-privacy budget ({b.stated}) "
                f"covers {b.covered} inference(s) and this edge has run {b.used}; deploy "
                "new weights (a new model version) or a package with a larger budget"
            )

    def begin(self, model_id: str) -> None:
        """One inference of ``model_id`` begins: count it, refuse it if enforced and
        spent, and log the 90 % warning and the exhaustion once each."""
        self.check(model_id)
        b = self._models.get(model_id)
        if b is None:
            return
        b.used += 1
        if b.used > b.covered and not b.exhausted:
            b.exhausted = b.warned = True
            log.error(
                "model %s v%s: circuit-privacy budget exhausted: %d inferences in this process, "
                "the budget (%s) covers %d; %s; deploy new weights or a package with a "
                "larger budget",
                b.model_id,
                b.version,
                b.used,
                b.stated,
                b.covered,
                "refusing further inferences" if self.enforce else "serving on",
            )
        elif b.used >= b.warn_at and not b.warned:
            b.warned = True
            log.warning(
                "model %s v%s: %d inferences in this process, %d%% or more of the %d its "
                "circuit-privacy budget (%s) covers; plan new weights or a package with a "
                "larger budget",
                b.model_id,
                b.version,
                b.used,
                round(100 * WARN_FRACTION),
                b.covered,
                b.stated,
            )
