"""Progress bars on long work: one `rich` bar, shown only when the work is large and progress is not
disabled (``LARDER_DISABLE_PROGRESS=1``, as the test suite and the server set it). Transient: the bar
is gone from the terminal when the work is done."""

from __future__ import annotations

import os
from typing import Any

#: Where bars are drawn (None: rich's default console, the terminal's stderr/stdout); tests set one.
console: Any = None


def progress_enabled() -> bool:
    """Whether bars are drawn at all (``LARDER_DISABLE_PROGRESS`` unset, or not ``1``/``true``/``yes``)."""
    return os.environ.get("LARDER_DISABLE_PROGRESS", "").lower() not in ("1", "true", "yes")


class ProgressBar:
    """A bar of ``total`` units (``unit``: what is counted), or nothing when ``show`` is false or
    progress is disabled. :meth:`phase` starts the next step of the work as a bar of its own."""

    def __init__(self, description: str, total: float | None, *, show: bool = True, unit: str = "rows") -> None:
        self._bar: Any = None
        self._task: Any = None
        if show and progress_enabled():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn(unit), TimeElapsedColumn(), TimeRemainingColumn(), transient=True,
                                 console=console)
            self._task = self._bar.add_task(description, total=total)

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def __enter__(self) -> ProgressBar:
        if self._bar is not None:
            self._bar.start()
        return self

    def advance(self, amount: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=amount)

    def phase(self, description: str, total: float | None) -> None:
        """The previous step done, a bar for the next."""
        if self._bar is not None:
            self._bar.update(self._task, completed=self._bar.tasks[-1].total or 0)
            self._task = self._bar.add_task(description, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


__all__ = ["ProgressBar", "console", "progress_enabled"]
