"""`make demo`: the whole product on one machine, with nothing but loopback.

1. Start a fake GitHub OIDC issuer (the runner's ID-token endpoint), an OAuth provider
   with a contacts API (Authlib's authorization server: access tokens live 5 s and
   every refresh rotates the refresh token and retires the old one), and the jobtoken
   broker (SQLite, a repository policy, two workers).
2. Do what a platform team does once: store the OAuth client secret, then
   ``jobtoken broker connect crm`` — the authorization-code flow with PKCE, where a
   scripted browser logs in as the test user and approves.
3. Run ``examples/workflows/demo.yml`` with act, three jobs side by side: each
   exchanges its OIDC identity for a 10-minute token, calls the contacts API through
   the broker's proxy once a second for 12 seconds while the access token expires and
   rotates under them, revokes its token, and sees it refused.
4. Show the job logs as GitHub would (tokens masked), check the audit trail's hash
   chain, and count: refreshes against expiries, upstream auth failures, reused refresh
   tokens.

Every process it starts is stopped when it ends, whatever happens.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from support.act import PROJECT_ROOT, ActRun, run_workflow
from support.broker_process import REPO, REPO_ID, BrokerProcess
from support.contacts_api import ContactsApi
from support.oauth_provider import OAuthProvider, browser_login_and_consent
from support.oidc_issuer import FakeOidcIssuer

WORKFLOW = PROJECT_ROOT / "examples" / "workflows" / "demo.yml"
JOBS = 3
CALLS = 12  # per job, one a second
ACCESS_TOKEN_SECONDS = 5
MARGIN = 2  # refresh_margin_seconds: refreshed 3 s after it was issued
POLICY = """\
  crm:
    - name: read-from-main
      scopes: [contacts.read]
      max_ttl: 10m
      when:
        ref: refs/heads/main
"""
#: step id -> what the demo expects of it, in the order the job runs them
EXPECTED_STEPS = {
    "contacts": "exchange the job's OIDC token for a crm token",
    "call": f"call the contacts API through the broker's proxy, {CALLS} times",
    "revoke": "revoke the token at teardown",
    "refused": "the revoked token is refused",
}


def main() -> int:
    with (
        tempfile.TemporaryDirectory(prefix="jobtoken-demo-") as workdir,
        FakeOidcIssuer() as issuer,
        OAuthProvider(access_token_seconds=ACCESS_TOKEN_SECONDS) as provider,
        ContactsApi() as static_api,
    ):
        issuer.claims.update(repository=REPO, repository_id=REPO_ID)
        broker = BrokerProcess(
            Path(workdir), issuer, static_api, workers=2, extra_policy=POLICY,
            extra_config=provider.connector_toml("crm", margin=MARGIN),
        )  # fmt: skip
        broker.write_files()
        _heading("set-up")
        print(f"fake GitHub OIDC issuer  {issuer.url}")
        print(f"OAuth provider + API     {provider.url}   (Authlib; access tokens live "
              f"{ACCESS_TOKEN_SECONDS} s, refresh tokens rotate)")  # fmt: skip
        print(f"jobtoken broker          {broker.url}   (SQLite, 2 workers)")
        _heading("the platform team connects the account, once")
        cli_out = _connect(broker, provider)
        broker.start()
        try:
            _heading(f"{JOBS} jobs at once: {WORKFLOW.relative_to(PROJECT_ROOT)} (act)")
            runs = _run_jobs(issuer, broker)
            print(_without_act_noise(runs[0].log))  # the other jobs' read the same; outcome:
            for number, run in enumerate(runs[1:], 2):
                said = run.step_log("call").splitlines()
                print(f"--- job {number}: " + next((x for x in said if "answered" in x), "?"))
            _heading("the broker's audit trail")
            audit_ok, refreshes = _show_audit(broker)
        finally:
            broker.stop()
        _heading("result")
        return _verdict(runs, issuer, provider, cli_out, audit_ok, refreshes)


#: act's line when it finds no Docker: the demo's jobs run on the host (``-self-hosted``)
ACT_DOCKER_NOISE = "Couldn't get a valid docker connection"


def _without_act_noise(log: str) -> str:
    """act's log without its Docker complaint: nothing here runs in a container."""
    return "\n".join(line for line in log.splitlines() if ACT_DOCKER_NOISE not in line)


def _connect(broker: BrokerProcess, provider: OAuthProvider) -> str:
    config = ("--config", str(broker.config_path))
    stored = broker.cli("connector", "set", "crm", *config, "--credential-file", "-",
                        stdin=provider.client_secret.encode())  # fmt: skip
    print("$ jobtoken broker connector set crm --config broker.toml --credential-file -")
    print(stored.stdout.decode().strip())
    command = subprocess.Popen(
        [sys.executable, "-m", "jobtoken.cli", "broker", "connect", "crm", *config,
         "--timeout", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert command.stdout is not None
    print("$ jobtoken broker connect crm --config broker.toml")
    printed = []
    while True:
        line = command.stdout.readline()
        printed.append(line)
        print(line.rstrip()[:110] + (" …" if len(line) > 110 else ""))
        if not line or line.startswith("waiting"):
            break
    url = next(line.strip() for line in printed if line.strip().startswith("http"))
    print("(a scripted browser logs in as the test user and approves)")
    requests.get(browser_login_and_consent(url, provider.username, provider.password), timeout=10)
    out, err = command.communicate(timeout=30)
    print((out + err).strip())
    return "".join(printed) + out + err + stored.stdout.decode() + stored.stderr.decode()


def _run_jobs(issuer: FakeOidcIssuer, broker: BrokerProcess) -> list[ActRun]:
    env = {"BROKER_URL": broker.url, "DEMO_CALLS": str(CALLS)}
    with ThreadPoolExecutor(JOBS) as pool:
        futures = [
            pool.submit(run_workflow, WORKFLOW.read_text(), issuer=issuer, env=env)
            for _ in range(JOBS)
        ]
        return [future.result() for future in futures]


def _show_audit(broker: BrokerProcess) -> tuple[bool, int]:
    config = ("--config", str(broker.config_path))
    verified = broker.cli("audit", "verify", *config)
    print((verified.stdout or verified.stderr).decode().strip())
    refreshes = 0
    for record in broker.audit_records():
        refreshes += record["decision"] == "refreshed"
        print(
            f"  {record.get('time', '')}  {record.get('decision', ''):<14} "
            f"{record.get('reason', '') or '':<18} connector={record.get('connector', '')}"
        )
    return verified.returncode == 0, refreshes


def _verdict(
    runs: list[ActRun],
    issuer: FakeOidcIssuer,
    provider: OAuthProvider,
    cli_out: str,
    audit_ok: bool,
    refreshes: int,
) -> int:
    failures = []
    for number, run in enumerate(runs, 1):
        for step_id, what in EXPECTED_STEPS.items():
            step = run.steps.get(step_id)
            if step is None or step.outcome != "success":
                failures.append(f"job {number}, step {step_id!r} ({what}): {step}")
        if f"answered {CALLS} of {CALLS} calls with 200" not in run.step_log("call"):
            failures.append(f"job {number}: a call through the proxy failed")
    secrets = [provider.client_secret, *provider.issued_secrets, *issuer.issued]
    secrets += [r.steps["contacts"].outputs.get("token", "") for r in runs if "contacts" in r.steps]
    logs = "".join(run.log for run in runs) + cli_out
    if any(secret and secret in logs for secret in secrets):
        failures.append("a secret appeared in a job log or the CLI's output")
    if not audit_ok:
        failures.append("the audit trail did not verify")
    checks = {
        f"{JOBS} jobs, {JOBS * CALLS} proxied calls, upstream auth failures": (
            provider.api_auth_failures, 0),
        "requests sent with a stale access token": (len(provider.stale_token_uses), 0),
        "reused (invalidated) refresh tokens": (provider.reused_refresh_attempts, 0),
        "refreshes at the provider = refreshes in the audit trail": (
            provider.refreshes, refreshes),
    }  # fmt: skip
    for what, (seen, expected) in checks.items():
        print(f"{'ok ' if seen == expected else 'FAIL'}  {what}: {seen}")
        if seen != expected:
            failures.append(f"{what}: {seen}, expected {expected}")
    for step_id, what in EXPECTED_STEPS.items():
        ok = all(r.steps.get(step_id) and r.steps[step_id].outcome == "success" for r in runs)
        print(f"{'ok ' if ok else 'FAIL'}  {what} (all {JOBS} jobs)")
    if failures:
        print("\nthe demo failed:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print(
        f"\n{JOBS} jobs shared one OAuth grant: {refreshes} refreshes, one per expiry, no "
        "race. No job held the access token, the refresh token or the client secret."
    )
    return 0


def _heading(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 72 - len(text)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
