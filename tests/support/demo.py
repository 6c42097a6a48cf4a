"""`make demo`: the whole product on one machine, with nothing but loopback.

1. Start a fake GitHub OIDC issuer (the runner's ID-token endpoint), a small
   "contacts" API that wants a long-lived API key, and the jobtoken broker
   (SQLite, a repository policy, the contacts connector whose API key it
   keeps encrypted).
2. Run ``examples/workflows/demo.yml`` with act on this host: the job
   exchanges its OIDC identity for a 10-minute contacts token, lists contacts
   through the broker's proxy, revokes the token, and sees it refused.
3. Show the job log as GitHub would (tokens masked), check the audit trail's
   hash chain, and list the decisions it recorded.

Every process it starts is stopped when it ends, whatever happens.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from support.act import PROJECT_ROOT, ActRun, run_workflow
from support.broker_process import BrokerProcess, running_broker
from support.contacts_api import ContactsApi
from support.oidc_issuer import FakeOidcIssuer

WORKFLOW = PROJECT_ROOT / "examples" / "workflows" / "demo.yml"
#: step id -> what the demo expects of it, in the order the job runs them
EXPECTED_STEPS = {
    "contacts": "exchange the job's OIDC token for a contacts token",
    "call": "list contacts through the broker's proxy",
    "revoke": "revoke the token at teardown",
    "refused": "the revoked token is refused",
}


def main() -> int:
    with (
        tempfile.TemporaryDirectory(prefix="jobtoken-demo-") as workdir,
        FakeOidcIssuer() as issuer,
        ContactsApi() as contacts,
        running_broker(Path(workdir), issuer, contacts) as broker,
    ):
        _heading("set-up")
        print(f"fake GitHub OIDC issuer  {issuer.url}")
        print(f"contacts API (upstream)  {contacts.url}   (its API key is stored in the broker)")
        print(f"jobtoken broker          {broker.url}   (SQLite, policy: {_relative(broker)})")

        _heading(f"the job: {WORKFLOW.relative_to(PROJECT_ROOT)} (act, on this host)")
        run = run_workflow(WORKFLOW.read_text(), issuer=issuer, env={"BROKER_URL": broker.url})
        print(run.log)

        _heading("the broker's audit trail")
        audit_ok = _show_audit(broker)

        _heading("result")
        return _verdict(run, issuer, contacts, audit_ok)


def _show_audit(broker: BrokerProcess) -> bool:
    config = ("--config", str(broker.config_path))
    verified = broker.cli("audit", "verify", *config)
    print((verified.stdout or verified.stderr).decode().strip())
    exported = broker.cli("audit", "export", "--format", "jsonl", *config)
    for line in exported.stdout.decode().splitlines():
        record = json.loads(line)
        print(
            f"  {record.get('time', '')}  {record.get('decision', ''):<12} "
            f"{record.get('reason', '') or '':<14} connector={record.get('connector', '')} "
            f"scopes={record.get('granted_scopes') or record.get('requested_scopes') or ''}"
        )
    return verified.returncode == 0 and exported.returncode == 0


def _verdict(run: ActRun, issuer: FakeOidcIssuer, contacts: ContactsApi, audit_ok: bool) -> int:
    failures = [
        f"step {step_id!r} ({what}): {run.steps.get(step_id)}"
        for step_id, what in EXPECTED_STEPS.items()
        if run.steps.get(step_id) is None or run.steps[step_id].outcome != "success"
    ]
    token = run.steps.get("contacts")
    secrets = [contacts.api_key, *issuer.issued]
    if token is not None and token.outputs.get("token"):
        secrets.append(token.outputs["token"])
    if any(secret in run.log for secret in secrets):
        failures.append("a secret appeared in the job log")
    if not audit_ok:
        failures.append("the audit trail did not verify")
    for step_id, what in EXPECTED_STEPS.items():
        outcome = run.steps[step_id].outcome if step_id in run.steps else "missing"
        print(f"{'ok ' if outcome == 'success' else 'FAIL'}  {what}")
    if failures:
        print("\nthe demo failed:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print("\nThe job never held the contacts API key, and its token ended with it.")
    return 0


def _heading(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 72 - len(text)), flush=True)


def _relative(broker: BrokerProcess) -> str:
    return str(broker.policy_path.relative_to(broker.workdir))


if __name__ == "__main__":
    sys.exit(main())
