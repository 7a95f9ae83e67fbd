"""A real FHIR R4B server for the tests: fhirstarter (FastAPI on fhir.resources).

Run by uvicorn in a subprocess with FHIR_SEQUENCE=R4B. fhirstarter validates the
POSTed body against the R4B Observation model (400 with an OperationOutcome when it
is invalid); this handler adds what a real EHR checks: the bearer token, a known
patient, and it keeps what it accepted (one JSON line per resource) for the test,
with the time it arrived in ``meta.lastUpdated``, as FHIR servers set it on create.

Environment: TEST_FHIR_RECEIVED (path), TEST_FHIR_TOKEN (expected token, optional),
TEST_FHIR_PATIENTS (comma-separated known ids), TEST_FHIR_FAIL_FIRST (answer 503 to
this many POSTs first), TEST_FHIR_DELAY (seconds to sleep in the handler).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.observation import Observation
from fhirstarter import FHIRProvider, FHIRStarter, InteractionContext
from fhirstarter.exceptions import (
    FHIRBadRequestError,
    FHIRGeneralError,
    FHIRUnauthorizedError,
)

RECEIVED = Path(os.environ["TEST_FHIR_RECEIVED"])
TOKEN = os.environ.get("TEST_FHIR_TOKEN", "")
PATIENTS = {p for p in os.environ.get("TEST_FHIR_PATIENTS", "").split(",") if p}
FAIL_FIRST = [int(os.environ.get("TEST_FHIR_FAIL_FIRST", "0"))]
DELAY = float(os.environ.get("TEST_FHIR_DELAY", "0"))

app = FHIRStarter()
provider = FHIRProvider()


@provider.create(Observation)
async def observation_create(context: InteractionContext, resource: Observation) -> str:
    if TOKEN and context.request.headers.get("authorization") != f"Bearer {TOKEN}":
        raise FHIRUnauthorizedError("missing or wrong bearer token")
    if FAIL_FIRST[0] > 0:
        FAIL_FIRST[0] -= 1
        raise FHIRGeneralError(503, "error", "transient", "try again later")
    if DELAY:
        await asyncio.sleep(DELAY)
    ref = resource.subject.reference if resource.subject is not None else None
    if ref is not None and ref.startswith("Patient/") and ref[8:] not in PATIENTS:
        raise FHIRBadRequestError("not-found", f"unknown subject {ref}")
    resource.id = str(uuid.uuid4())
    resource.meta = Meta.model_validate({"lastUpdated": datetime.now(UTC).isoformat()})
    with RECEIVED.open("a") as out:
        out.write(resource.model_dump_json() + "\n")
    return resource.id


app.add_providers(provider)

# Serve it under /fhir, as EHRs do, to check that the sink keeps the base path.
root = FastAPI()
root.mount("/fhir", app)
