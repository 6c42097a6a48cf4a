"""The workflow the secret-manager end-to-end tests run: exchange, use, revoke."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

__all__ = ["provider_workflow"]


def provider_workflow(
    inputs: dict[str, str], *, revoke: bool = True, before: Sequence[dict[str, Any]] = ()
) -> str:
    """A job that exchanges with ``inputs``, uses the token (never printing it), and
    with ``revoke`` revokes it; ``before`` are steps that run first."""
    steps: list[dict[str, Any]] = [
        *before,
        {"id": "exchange", "uses": "owner/jobtoken@v1", "with": inputs},
        {
            "id": "use",
            "if": "steps.exchange.outputs.token != ''",
            "shell": "bash",
            "env": {"TOKEN": "${{ steps.exchange.outputs.token }}"},
            "run": 'echo "calling the connector with $TOKEN (${#TOKEN} characters)"',
        },
    ]
    if revoke:
        steps.append(
            {
                "id": "revoke",
                "if": "always()",
                "uses": "owner/jobtoken/revoke@v1",
                "with": {
                    "provider": inputs["provider"],
                    "token": "${{ steps.exchange.outputs.token }}",
                    "revoke-handle": "${{ steps.exchange.outputs.revoke-handle }}",
                },
            }
        )
    workflow = {
        "on": "push",
        "permissions": {"id-token": "write", "contents": "read"},
        "jobs": {"connector": {"runs-on": "ubuntu-latest", "steps": steps}},
    }
    return yaml.safe_dump(workflow, sort_keys=False)
