"""Progress of bank training: a callback receiving events, or a rich progress bar."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType


@dataclass(frozen=True)
class BankProgress:
    """One event: ``epoch`` (1-based) of ``chunk`` (0-based) finished; ``done`` marks a saved chunk.

    ``models_done`` counts models already available (loaded from the cache or trained).
    """

    chunk: int
    chunks: int
    epoch: int
    epochs: int
    models_in_chunk: int
    models_done: int
    models_total: int
    done: bool = False


ProgressCallback = Callable[[BankProgress], None]


class RichProgress(AbstractContextManager["RichProgress"]):
    """A transient rich progress bar over model-epochs, on stderr."""

    def __init__(self, description: str = "training models") -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("models"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._description = description
        self._task: int | None = None

    def __enter__(self) -> RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.__exit__(exc_type, exc, tb)

    def __call__(self, event: BankProgress) -> None:
        if self._task is None:
            self._task = self._progress.add_task(self._description, total=event.models_total)
        # Fractional models: the chunk's models advance together, epoch by epoch.
        partial = 0.0 if event.done else event.models_in_chunk * event.epoch / event.epochs
        self._progress.update(self._task, completed=event.models_done + partial)
