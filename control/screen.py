"""The live views' terminal: a block of lines redrawn in place (``top``, ``rollout --watch``)."""

from __future__ import annotations

import os
import re
import shutil
import textwrap
import time
from collections.abc import Sequence
from typing import TextIO

_FIGURE = re.compile(r"(?<=\d) (?=(?:%|ms|s|min|h|d)(?:\W|$))")


def is_terminal(stream: TextIO) -> bool:
    return stream.isatty() and os.environ.get("TERM") != "dumb"


def sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


class Screen:
    """Redraws a block of lines in place on a terminal: the cursor goes back up over the
    previous frame and each line is rewritten and cleared to its end. No alternate screen,
    so the last frame stays in the scrollback when the command ends."""

    def __init__(self, out: TextIO, *, wrap: bool = False) -> None:
        self._out = out
        self._wrap = wrap
        self._drawn = 0

    def draw(self, lines: Sequence[str]) -> None:
        width, height = shutil.get_terminal_size()
        # Lines the terminal wraps, or more lines than fit, would break the count of lines to
        # go back up: long lines are wrapped here (prose) or cut (tables), and the bottom cut.
        shown = [part for line in lines for part in self._fit(line, max(10, width - 1))]
        shown = shown[: max(1, height - 1)]
        up = f"\r\x1b[{self._drawn}A" if self._drawn else "\x1b[?25l"
        body = "".join(f"{line}\x1b[K\n" for line in shown)
        self._out.write(f"{up}{body}\x1b[J")
        self._out.flush()
        self._drawn = len(shown)

    def _fit(self, line: str, width: int) -> list[str]:
        if not self._wrap or len(line) <= width:
            return [line[:width]]
        indent = " " * (len(line) - len(line.lstrip()) + 4)
        # A figure stays on one line with its unit: textwrap does not break at a no-break space.
        glued = _FIGURE.sub("\u00a0", line)
        wrapped = textwrap.wrap(glued, width, subsequent_indent=indent) or [""]
        return [part.replace("\u00a0", " ") for part in wrapped]

    def close(self) -> None:
        self._out.write("\x1b[?25h")
        self._out.flush()
