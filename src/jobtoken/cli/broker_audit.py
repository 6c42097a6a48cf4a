"""``jobtoken broker audit …``: read, check, export and archive the audit trail.

- ``audit tail --config FILE [-n N] [--follow] [--json]`` — the last N records (10),
  one line each; ``--follow`` then polls for new ones every second until interrupted
  (Ctrl-C ends it with exit 0);
- ``audit list --config FILE --since TIME [--until TIME] [--decision D]
  [--connector C] [--json]`` — the records made in ``[since, until)``, oldest first.
  TIME is an age (``15m``, ``2h``, ``7d``), a UTC date (``2026-11-01``) or an RFC 3339
  time. It reads every stored record up to the head it reads first, a page at a time;
- ``audit verify --config FILE`` — check the hash chain up to the head it reads
  first, so records appended meanwhile by a running broker do not disturb it (exit 1
  when broken);
- ``audit export --config FILE --format jsonl [--output PATH]`` — records for a SIEM;
- ``audit archive --config FILE --before DATE --output FILE`` — move older records to
  a file and keep their head as a checkpoint that ``verify`` starts from.

``tail`` and ``list`` print what ``audit/view.py`` makes of a record (never a token:
the trail holds only hashes); ``--json`` prints records as ``export`` does.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from jobtoken.broker.assembly import open_configured_store
from jobtoken.broker.audit.archive import ArchiveError, archive_before
from jobtoken.broker.audit.chain import DECISIONS, check_chain, export_jsonl
from jobtoken.broker.audit.view import (
    AuditFilter,
    Record,
    audit_line,
    follow,
    json_line,
    parse_time,
    read_records,
    tail_start,
)
from jobtoken.broker.config import ConfigError, load_config
from jobtoken.broker.store import SqlStore, StoreError
from jobtoken.wire.grammar import parse_ascii_int

__all__ = ["register_audit"]

#: seconds between two polls of ``tail --follow``
FOLLOW_SECONDS = 1.0


def register_audit(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = subparsers.add_parser("audit", help="read, verify, export or archive the audit trail")
    commands = audit.add_subparsers(dest="audit_command", required=True)

    tail = commands.add_parser("tail", help="the last records; --follow for new ones")
    _config_arg(tail)
    tail.add_argument(
        "-n", "--lines", type=_count, default=10, metavar="N",
        help="how many of the last records to print first (default 10)",
    )  # fmt: skip
    tail.add_argument(
        "-f", "--follow", action="store_true", help="then print new records until interrupted"
    )
    _json_arg(tail)
    tail.set_defaults(handler=_audit_tail)

    listing = commands.add_parser("list", help="the records made in a time range")
    _config_arg(listing)
    listing.add_argument(
        "--since", required=True, type=_time, metavar="TIME",
        help="from this time on: an age (15m, 2h, 7d), a UTC date or an RFC 3339 time",
    )  # fmt: skip
    listing.add_argument("--until", type=_time, metavar="TIME", help="before this time")
    listing.add_argument("--decision", choices=DECISIONS, help="only records of this decision")
    listing.add_argument("--connector", metavar="NAME", help="only records of this connector")
    _json_arg(listing)
    listing.set_defaults(handler=_audit_list)

    verify = commands.add_parser("verify", help="check the hash chain")
    _config_arg(verify)
    verify.set_defaults(handler=_audit_verify)
    archive = commands.add_parser(
        "archive", help="move old records to a file, keeping the chain verifiable"
    )
    _config_arg(archive)
    archive.add_argument(
        "--before", required=True, type=_utc_time, metavar="DATE",
        help="archive records made before this UTC date or time (2026-11-01 or RFC 3339)",
    )  # fmt: skip
    archive.add_argument("--output", type=Path, required=True, help="a new JSONL file")
    archive.set_defaults(handler=_audit_archive)
    export = commands.add_parser("export", help="write every record")
    _config_arg(export)
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.add_argument("--output", type=Path, help="file to write (default stdout)")
    export.set_defaults(handler=_audit_export)


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the broker's TOML config")


def _json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="one JSON record a line, as `audit export` writes"
    )


def _fail(message: str) -> int:
    print(f"jobtoken broker: {message}", file=sys.stderr)
    return 1


def _count(text: str) -> int:
    count = parse_ascii_int(text, 9)
    if count is None:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a number of records")
    return count


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _utc_time(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (2026-11-01) or an RFC 3339 time"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _audit_tail(args: argparse.Namespace) -> int:
    def emit(record: Record) -> None:
        print(json_line(record) if args.json else audit_line(record), flush=True)

    def warn(text: str) -> None:
        print(f"jobtoken broker: {text}", file=sys.stderr, flush=True)

    try:
        with _configured_store(args.config) as store:
            after, head = tail_start(store, args.lines)
            for record in read_records(store, after, up_to=head):
                emit(record)
            if args.follow:
                follow(store, head, emit, interval=FOLLOW_SECONDS, warn=warn)
    except (ConfigError, StoreError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return _stdout_closed()
    return 0


def _audit_list(args: argparse.Namespace) -> int:
    if args.until is not None and args.until <= args.since:
        return _fail("--until must be later than --since")
    wanted = AuditFilter(args.since, args.until, args.decision, args.connector)
    shown = read = 0
    try:
        with _configured_store(args.config) as store:
            _, head = tail_start(store, 0)
            for record in read_records(store, 0, up_to=head):
                read += 1
                if wanted.matches(record[1]):
                    print(json_line(record) if args.json else audit_line(record))
                    shown += 1
    except (ConfigError, StoreError) as exc:
        return _fail(str(exc))
    except BrokenPipeError:
        return _stdout_closed()
    print(f"{shown} of {read} record(s) match, up to record {head}", file=sys.stderr)
    return 0


def _stdout_closed() -> int:
    """The reader went away (``| head``): stop quietly, as a filter does."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


def _audit_archive(args: argparse.Namespace) -> int:
    try:
        with _configured_store(args.config) as store:
            checkpoint = archive_before(store, args.before, args.output)
    except (ConfigError, ArchiveError) as exc:
        return _fail(str(exc))
    if checkpoint is None:
        print(f"no record was made before {args.before.isoformat()}: nothing archived")
        return 0
    print(
        f"archived {checkpoint.records} record(s), up to record {checkpoint.seq}, to "
        f"{args.output} (sha256 {checkpoint.file_sha256}); the store's chain now starts "
        f"after that record (checkpoint hash {checkpoint.hash})"
    )
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    try:
        with _configured_store(args.config) as store:
            head = store.audit_head()
            start = store.audit_checkpoint()
            rows = store.audit_rows(up_to=head[0] if head else 0)
            problems = check_chain(rows, head, start)
    except ConfigError as exc:
        return _fail(str(exc))
    if problems:
        for problem in problems:
            print(f"audit chain broken: {problem}", file=sys.stderr)
        return 1
    count = (head[0] if head else 0) - (start[0] if start else 0)
    after = f" after the archive checkpoint at record {start[0]}" if start else ""
    print(f"audit chain intact: {count} record(s){after}, head {head[1] if head else '-'}")
    return 0


def _audit_export(args: argparse.Namespace) -> int:
    try:
        with _configured_store(args.config) as store:
            if args.output is None:
                count = export_jsonl(store.audit_rows(), sys.stdout)
            else:
                with open(args.output, "w", encoding="utf-8") as out:
                    count = export_jsonl(store.audit_rows(), out)
    except ConfigError as exc:
        return _fail(str(exc))
    print(f"exported {count} audit record(s)", file=sys.stderr)
    return 0


@contextmanager
def _configured_store(config_path: Path) -> Iterator[SqlStore]:
    """The store the config at `config_path` names, closed on leaving; ConfigError if none."""
    store = open_configured_store(load_config(config_path))
    try:
        yield store
    finally:
        store.close()
