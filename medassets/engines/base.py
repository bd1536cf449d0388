"""The one small interface every generation backend implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from medassets.core.cache import Generation

Messages = list[dict[str, str]]
OnDone = Callable[[int, Generation], None]


class Engine(Protocol):
    backend: str

    def describe(self) -> dict[str, Any]:
        """Versions, device and settings that can change the output, for metadata."""

    def generate(self, conversations: Sequence[Messages], on_done: OnDone) -> None:
        """Generate one answer per conversation, calling on_done(index, generation) as each finishes."""

    def close(self) -> None:
        """Release the model and every process the engine started."""
