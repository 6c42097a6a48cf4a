"""moto's AWS server on loopback, with SigV4 and IAM checking switched on.

    with MotoServer() as aws:
        arn = aws.create_role("gh-reader", allowed_actions=["secretsmanager:GetSecretValue"])
        aws.create_secret("connectors/hubspot", '{"token": …}', tags={"jobtoken:scopes": "a b"})
        aws.enforce_auth(unchecked=1)  # the next call (STS) passes, later ones are checked

moto checks signatures and IAM only after its first ``INITIAL_NO_AUTH_ACTION_COUNT``
requests; the server starts with a large count so that set-up passes, and
``enforce_auth`` sets it to zero through ``/moto-api/reset-auth``. A wrong
signature then gets 403 ``SignatureDoesNotMatch`` and a missing permission 403
``AccessDenied``. moto does not validate the web identity token itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jobtoken.action.providers.sigv4 import AwsCredentials, sign
from support.loopback import free_port, stop_process, wait_until_healthy

__all__ = ["ACCOUNT_ID", "MotoServer", "MotoUnavailable"]

ACCOUNT_ID = "123456789012"
SETUP_CREDENTIALS = AwsCredentials(
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)
STARTUP_TIMEOUT = 20.0


class MotoUnavailable(RuntimeError):
    """moto_server is missing: install the test extra (`pip install -e '.[test]'`)."""


class MotoServer:
    """``moto_server`` on a free loopback port; stopped on exit."""

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        binary = _moto_server_binary()
        self.port = free_port()
        env = dict(
            os.environ,
            INITIAL_NO_AUTH_ACTION_COUNT="1000000",
            MOTO_ALLOW_NONEXISTENT_REGION="false",
        )
        self._process = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"{self.url}/moto-api/"
        wait_until_healthy(
            self._process, url, name="moto_server", timeout=STARTUP_TIMEOUT, error=MotoUnavailable
        )
        return self

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def enforce_auth(self, *, unchecked: int = 0) -> None:
        """From now on, moto checks every request's signature and IAM permissions.

        ``unchecked=1`` lets the next request through unchecked: moto verifies a
        signature on every call, while AWS's ``AssumeRoleWithWebIdentity`` is unsigned
        (the ID token is the credential), so a test lets exactly that call pass and
        every later one (the signed Secrets Manager calls) is verified.
        """
        self._raw(
            "POST", "/moto-api/reset-auth", str(unchecked).encode(), {"Content-Type": "text/plain"}
        )

    def create_role(self, name: str, *, allowed_actions: Sequence[str], resource: str = "*") -> str:
        """A role any web identity may assume, allowed ``allowed_actions``; its ARN."""
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {
                        "Federated": f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/"
                        "token.actions.githubusercontent.com"
                    },
                    "Action": "sts:AssumeRoleWithWebIdentity",
                }
            ],
        }
        answer = self._query(
            "iam",
            {
                "Action": "CreateRole",
                "Version": "2010-05-08",
                "RoleName": name,
                "AssumeRolePolicyDocument": json.dumps(trust),
            },
        )
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": list(allowed_actions), "Resource": resource}
            ],
        }
        self._query(
            "iam",
            {
                "Action": "PutRolePolicy",
                "Version": "2010-05-08",
                "RoleName": name,
                "PolicyName": "connector-read",
                "PolicyDocument": json.dumps(policy),
            },
        )
        start = answer.index("<Arn>") + len("<Arn>")
        return answer[start : answer.index("</Arn>", start)]

    def create_secret(self, name: str, value: str, *, tags: Mapping[str, str] | None = None) -> str:
        """A Secrets Manager secret holding ``value``; its ARN."""
        body: dict[str, Any] = {"Name": name, "SecretString": value}
        if tags:
            body["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        answer = json.loads(self._json("secretsmanager", "secretsmanager.CreateSecret", body))
        arn: str = answer["ARN"]
        return arn

    def put_secret_value(self, name: str, value: str, *, stages: Sequence[str]) -> None:
        self._json(
            "secretsmanager",
            "secretsmanager.PutSecretValue",
            {"SecretId": name, "SecretString": value, "VersionStages": list(stages)},
        )

    # --- internals ---------------------------------------------------------------------------

    def _query(self, service: str, params: Mapping[str, str]) -> str:
        body = urllib.parse.urlencode(params).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        return self._signed(service, body, headers)

    def _json(self, service: str, target: str, payload: Mapping[str, Any]) -> str:
        headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
        return self._signed(service, json.dumps(payload).encode(), headers)

    def _signed(self, service: str, body: bytes, headers: Mapping[str, str]) -> str:
        signed = sign(
            method="POST",
            url=f"{self.url}/",
            headers=headers,
            body=body,
            credentials=SETUP_CREDENTIALS,
            region=self.region,
            service=service,
        )
        return self._raw("POST", "/", body, signed)

    def _raw(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> str:
        request = urllib.request.Request(
            f"{self.url}{path}", data=body, method=method, headers=dict(headers)
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text: str = response.read().decode()
                return text
        except urllib.error.HTTPError as exc:
            raise RuntimeError(
                f"moto {path}: {exc.code} {exc.read().decode(errors='replace')}"
            ) from None


def _moto_server_binary() -> Path:
    import sys

    beside = Path(sys.executable).with_name("moto_server")
    found = beside if beside.exists() else shutil.which("moto_server")
    if not found:
        raise MotoUnavailable(
            "moto_server not found: pip install -e '.[test]' (installs moto[server])"
        )
    return Path(found)
