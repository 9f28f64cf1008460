"""The OpenAPI document tells the truth: Schemathesis generates requests for every operation from it and checks
each answer against it (no 5xx; only documented statuses; the documented content type; the documented body).

Bounded: a few examples per operation (``EXAMPLES``), enough to reach each route's errors and its success over
a knowledge base that exists. The environment variable ``SCHEMATHESIS_EXAMPLES`` raises it for a longer run.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import one_of
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from rag.engine import Engine
from rag.settings import Settings
from stores import Embedder
from tests.conftest import CHINESE_POLICY, ENGLISH_POLICY

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> FastAPI:
    root = tmp_path_factory.mktemp("schemathesis")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        engine = Engine(Settings(data_dir=root / "data"))
    engine.embedder = embedder
    engine.knowledge_bases.add_text("t", "travel.md", ENGLISH_POLICY)
    engine.knowledge_bases.add_text("文档", "security.md", CHINESE_POLICY)
    return create_app(engine=engine)


def test_every_operation_answers_as_documented(app: FastAPI) -> None:
    # Hypothesis driven directly, one operation after another: schemathesis' own pytest plugin does not run
    # under pytest 9 (it sets Item._nodeid, which pytest 9 removed).
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: dict[str, str] = {}
    cases: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        try:
            cases[operation.label] = exercise(operation)
        except (Exception, FailureGroup) as error:  # FailureGroup: the checks that failed, with a curl to reproduce
            failures[operation.label] = "\n".join(str(e) for e in getattr(error, "exceptions", [error]))[:3000]
    print(f"schemathesis: {sum(cases.values())} cases over {len(cases) + len(failures)} operations")
    assert not failures, "\n\n".join(f"{label}\n{problem}" for label, problem in failures.items())
    assert len(cases) >= 15 and all(cases.values()), cases


def exercise(operation: schemathesis.APIOperation) -> int:
    """Calls ``operation`` with valid and invalid generated requests; the number of cases run."""
    ran = []
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,  # the same cases every run: a failure here is reproducible
        database=None,
    )
    @given(case=one_of(operation.as_strategy(mode) for mode in modes))
    def call(case: schemathesis.Case) -> None:
        ran.append(case)
        case.call_and_validate(checks=CHECKS, timeout=120)  # a busy 2-core CI machine, not a hung server

    call()
    return len(ran)


def test_the_document_names_every_error_and_stream(app: FastAPI) -> None:
    document = app.openapi()
    upload = document["paths"]["/kbs/{kb}/documents"]["post"]["responses"]
    assert {"200", "202", "401", "403", "413", "415", "422", "503"} <= set(upload)
    assert upload["413"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    chat = document["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert "422" not in chat and chat["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OpenAIErrorBody"
    }
    assert set(chat["200"]["content"]) == {"application/json", "text/event-stream"}
    assert chat["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatCompletion"}
    ask = document["paths"]["/kbs/{kb}/ask"]["post"]["responses"]
    assert set(ask["200"]["content"]) == {"application/json", "text/event-stream"}
    assert ask["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
