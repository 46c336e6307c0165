"""Stop signals for the training loop: SIGTERM or Ctrl-C asks it to stop after the current step."""

from __future__ import annotations

import signal
import threading


class StopSignals:
    """Within `with StopSignals(enabled) as stop:`, SIGTERM or SIGINT sets stop.name (the loop then finishes its
    step, checkpoints and stops); a second SIGINT raises KeyboardInterrupt at once. The handlers before are restored
    after. Only installed when enabled and in the main thread: under torchrun a rank that outlived a dead peer would
    hang in its next all-reduce, so the ranks keep the default (die at once) and torchrun's restarts recover."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.name: str | None = None
        self._before: dict[int, object] = {}

    def _ask(self, signum: int, _frame) -> None:
        if self.name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.name = signal.Signals(signum).name

    def __enter__(self) -> StopSignals:
        if self.enabled:
            self._before = {s: signal.signal(s, self._ask) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._before.items():
            signal.signal(s, handler)
