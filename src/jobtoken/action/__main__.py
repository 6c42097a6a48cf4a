"""Entry point of both actions: ``python -I -S -c '<bootstrap>' <src> exchange|revoke``.

action.yml puts ``$GITHUB_ACTION_PATH/src`` on ``sys.path`` itself (``-I``
ignores PYTHONPATH and, from 3.11, does not add the script's directory) and
calls `main`. ``python -m jobtoken.action exchange`` works too where the package
is importable.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

USAGE = "usage: python -m jobtoken.action exchange|revoke"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if sys.version_info < (3, 10):  # noqa: UP036 -- runners may have an older python3
        print("::error title=jobtoken::jobtoken needs Python 3.10 or newer on the runner")
        return 2
    if args == ["exchange"]:
        from jobtoken.action.exchange import run_exchange

        return run_exchange()
    if args == ["revoke"]:
        from jobtoken.action.revoke import run_revoke

        return run_revoke()
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
