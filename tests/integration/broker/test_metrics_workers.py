"""``serve --workers 2``: every scrape of /metrics counts the requests of both workers."""

from __future__ import annotations

import re
import time
from pathlib import Path

import requests

from support.broker_process import serving_broker

EXCHANGES = 24


def issued(text: str) -> int:
    found = re.findall(
        r'^jobtoken_exchanges_total\{[^}]*outcome="issued"[^}]*\} (\d+)$', text, re.M
    )
    return sum(map(int, found))


def test_each_scrape_adds_up_both_workers(tmp_path: Path) -> None:
    with serving_broker(tmp_path, workers=2) as broker:
        for _ in range(EXCHANGES):  # a new connection each: the kernel spreads them
            with requests.Session() as session:
                assert broker.exchange().status_code == 200
                session.close()
        time.sleep(1.5)  # one share interval, and some
        scrapes = []
        for _ in range(8):  # fresh connections: both workers answer some of these
            with requests.Session() as session:
                scrapes.append(issued(session.get(f"{broker.url}/metrics", timeout=10).text))
        assert scrapes == [EXCHANGES] * 8
