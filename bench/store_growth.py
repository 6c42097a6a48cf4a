"""Does the exchange's store work grow with the store? The jti claim and the exchange's
audit+token commit on an empty SQLite store, then with N rows already in jti_replay,
tokens and audit (durable: WAL, synchronous=FULL, as the broker runs).

    .venv/bin/python bench/store_growth.py [--rows 1000000] [--calls 2000]
"""

from __future__ import annotations

import argparse
import secrets
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from smoke import smoke_args

from jobtoken.broker.store import SqlStore, TokenRecord, open_store


def _token(token_id: str, now: int) -> TokenRecord:
    return TokenRecord(
        token_id, secrets.token_hex(32), "minted", "contacts", "contacts.read",
        "repo:o/r:ref:refs/heads/main", "1", "2", "1", "7", now, now + 600,
    )  # fmt: skip


def _fill(path: Path, rows: int, now: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO jti_replay (issuer, jti, expires_at) VALUES ('i', ?, ?)",
        ((f"fill-{n}", now + 3600) for n in range(rows)),
    )
    conn.executemany(
        "INSERT INTO tokens (token_id, token_sha256, kind, connector, scopes, subject, "
        "repository_id, run_id, run_attempt, check_run_id, issued_at, expires_at, "
        "shared_credential) VALUES (?, ?, 'minted', 'c', 's', 'sub', '1', ?, '1', '', ?, ?, 0)",
        ((f"fill-{n}", f"{n:064x}", str(n), now, now + 3600) for n in range(rows)),
    )
    conn.executemany(
        "INSERT INTO audit (seq, record, prev_hash, hash) VALUES (?, '{}', ?, ?)",
        ((n + 1, f"{n:064x}", f"{n + 1:064x}") for n in range(rows)),
    )
    conn.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)", (rows, f"{rows:064x}"))
    conn.execute("COMMIT")
    conn.close()


def _measure(store: SqlStore, calls: int) -> list[float]:
    now = int(time.time())
    seconds = []
    for n in range(calls):
        jti = secrets.token_hex(8)
        start = time.perf_counter()
        assert store.claim_jti("i", jti, now + 300)
        store.issue_token(lambda seq, prev: ("{}", f"{seq:064x}"), _token(f"b-{jti}-{n}", now))
        seconds.append(time.perf_counter() - start)
    return seconds


def _row(label: str, seconds: list[float]) -> str:
    cuts = statistics.quantiles(seconds, n=100)
    return f"{label:<28} p50 {cuts[49] * 1000:7.3f} ms   p99 {cuts[98] * 1000:7.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=2000)
    args = smoke_args(parser, rows=1000, calls=20)
    print(f"{'store':<28} {'commit latency':>30}")
    with tempfile.TemporaryDirectory() as tmp:
        empty = open_store("sqlite", path=Path(tmp) / "empty.db")
        print(_row("empty store", _measure(empty, args.calls)))
        empty.close()
        full_path = Path(tmp) / "full.db"
        open_store("sqlite", path=full_path).close()
        _fill(full_path, args.rows, int(time.time()))
        full = open_store("sqlite", path=full_path)
        print(_row(f"{args.rows:,} rows per table", _measure(full, args.calls)))
        full.close()


if __name__ == "__main__":
    main()
