"""``--smoke``: every benchmark script's mode that runs it end to end in a few seconds,
measuring nothing, so that ``make test`` (``tests/unit/test_bench_smoke.py``) finds a
script that no longer runs (its imports, its servers, its report) before ``make bench``.

:func:`smoke_args` adds the flag to a script's parser, parses, and when it is given
replaces the counts the script names with small ones.
"""

from __future__ import annotations

import argparse

__all__ = ["smoke_args"]


def smoke_args(parser: argparse.ArgumentParser, **small: object) -> argparse.Namespace:
    """The parsed arguments; with ``--smoke``, each of ``small`` (argument name -> value)
    overrides what was given."""
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few runs to check the script works (its figures mean nothing)",
    )
    args = parser.parse_args()
    if args.smoke:
        for name, value in small.items():
            setattr(args, name, value)
    return args
