"""Untrusted text (from a broker, a cloud, a JWT, a policy file) made safe to print."""

from __future__ import annotations

import re

__all__ = ["UNSAFE_CODE_POINTS", "neutralize"]

#: C0/C1 controls, DEL, and Unicode line/paragraph separators and bidi controls, each
#: mapped to a space (a `str.translate` table: compiling the same as a regex costs ≈1 ms)
UNSAFE_CODE_POINTS = (
    *range(0x00, 0x20),
    *range(0x7F, 0xA0),
    0x2028,
    0x2029,
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
)
_UNSAFE_TO_SPACE = dict.fromkeys(UNSAFE_CODE_POINTS, " ")


def neutralize(text: str, limit: int = 300) -> str:
    """`text` safe to print in a log line or an annotation, at most `limit` characters.

    Control characters (newlines included) become spaces, `::` becomes `: :`
    and `##[` becomes `# #[`, so that nothing in `text` can start or end a
    workflow command, whatever the runner version.
    """
    text = text.translate(_UNSAFE_TO_SPACE)
    text = re.sub(r":(?=:)", ": ", text)
    text = text.replace("##[", "# #[")
    if len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text
