"""
SIGTERM and Ctrl-C (SIGINT) stop a run at a clean point. The first signal is recorded, not acted on at once: training
stops after the current optimizer step (`StopOnSignal`, a `TrainerCallback`), and the harness stops between languages
and between runs (`StopOnSignal.check`); then `RunStopped` says where it stopped and how to resume, and the process
exits with 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM). A second signal stops the process at once, as
it would without this.

A run resumes from the checkpoint at the end of its last whole epoch, never from one inside an epoch: the harness's
length-grouped batches are drawn from the random state at the start of an epoch, which a checkpoint saved inside it
does not hold, so a run resumed there sees its remaining batches in another order and ends with other scores
(measured: German F1 24.36 instead of 24.32 on the tiny UDPOS job). The steps of a cut epoch are trained again.
"""

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator

from transformers import TrainerCallback


logger = logging.getLogger(__name__)


class RunStopped(Exception):
    """The run stopped at a clean point on a signal; the message says where and how to resume."""

    def __init__(self, signum: int, where: str):
        super().__init__(f"Stopped by {signal.Signals(signum).name} {where}.")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopOnSignal(TrainerCallback):
    """
    Records a SIGTERM or SIGINT (`installed`) and stops training after the step that is running when it comes. At an
    epoch's last step, the epoch's evaluation and checkpoint follow as in an uninterrupted run; inside an epoch, the
    Trainer leaves its loop without them (an evaluation of a cut epoch would change the checkpoint chosen on English
    dev, and a checkpoint there would not resume exactly).
    """

    def __init__(self):
        self.signum: int | None = None
        self.cut_epoch = False  # the stop came before the last step of an epoch

    @contextlib.contextmanager
    def installed(self) -> Iterator["StopOnSignal"]:
        """
        This handler for SIGTERM and SIGINT inside the block; the handlers before it again after. Only the main thread
        may set a handler: called from another thread, the block sets none, and the signals do what they did before it
        (Python's default: SIGTERM ends the process at once, Ctrl-C raises KeyboardInterrupt in the main thread). A
        signal whose handler was set outside Python (`signal.getsignal` is None) keeps it, with a warning: Python
        could not set it back.
        """
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
        for signum, handler in list(before.items()):
            if handler is None:
                logger.warning("%s keeps the handler set outside Python: a run does not stop at a clean point on it",
                               signal.Signals(signum).name)  # fmt: skip
                del before[signum]
        try:
            for signum in before:
                signal.signal(signum, self.request)
            yield self
        finally:
            for signum, handler in before.items():
                signal.signal(signum, handler)

    def request(self, signum: int, frame) -> None:
        if self.signum is not None:  # the second: stop at once, as without a handler
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        os.write(2, f"\n{signal.Signals(signum).name}: stopping at the next clean point (after the current training "
                    "step, or the current language); send it again to stop at once\n".encode())  # fmt: skip

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def check(self, where: str) -> None:
        """Raise `RunStopped` if a stop was asked for; `where`: the clean point reached ("after run X", ...)."""
        if self.signum is not None:
            raise RunStopped(self.signum, where)

    def on_step_end(self, args, state, control, **kwargs):
        if self.signum is not None:
            control.should_training_stop = True
            self.cut_epoch = not float(state.epoch).is_integer()
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.cut_epoch:
            control.should_evaluate = False
            control.should_save = False
        return control
