"""End-to-end fixtures: real workflows run with act on this host."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from support.act import ActRun, find_act, run_workflow

# servers for the secret-manager providers' tests (OpenBao, moto, GCP and Azure fakes)
from .provider_servers import (  # noqa: F401
    aws_deployed,
    azure_deployed,
    e2e_issuer,
    gcp_deployed,
    vault_deployed,
)

RunAct = Callable[..., ActRun]


@pytest.fixture(scope="session")
def act_binary() -> str:
    """The act binary; its absence fails (never skips) with what to install."""
    return find_act()


@pytest.fixture
def run_act(act_binary: str) -> RunAct:
    """``run_act(workflow_text, issuer=…, env=…)``: see ``support.act``."""

    def run(workflow: str, **kwargs: Any) -> ActRun:
        return run_workflow(workflow, **kwargs)

    return run
