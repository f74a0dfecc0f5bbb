"""The errors makeflow raises: each knows its message, where it happened and its exit status.

The library raises; only the command line prints them and picks the exit status, so a
user never sees a makeflow traceback for a mistake of theirs.
"""

from __future__ import annotations

import signal


class MakeflowError(Exception):
    """A problem the user can fix. `where` is a file:line or a rule, `hint` says what to do."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text = f"{text}\n{self.hint}"
        return text


class UserError(MakeflowError):
    """Wrong input from the user: the rules file, the config, the command line."""

    exit_code = 2


class BuildFailed(MakeflowError):
    """One or more steps failed; the build result says which."""

    exit_code = 1


class RemoteFailed(MakeflowError):
    """The remote cache could not be used by a command that needs it (`push`, `pull`)."""

    exit_code = 1


class Interrupted(MakeflowError):
    """The build was stopped by a signal; the exit status follows the shell's 128 + signal."""

    def __init__(self, message: str, *, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum
        self.signum = signum


# Signals that stop a build as Ctrl-C does: the running steps are stopped whole, what
# finished is recorded. Without SIGHUP here, a closed terminal or a dropped ssh session
# killed makeflow at once and left its steps running, unrecorded, into the next build.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a closed terminal, a dropped ssh session), raised in the main
    thread so a build stops as it does on Ctrl-C; `signum` says which."""

    def __init__(self, signum: int = 15):  # SIGTERM
        super().__init__()
        self.signum = signum


class StepError(Exception):
    """Raised by a Python step to fail with a plain message instead of a traceback.

    Meant for checks such as a quality gate: ``raise StepError("r2 0.31 is below 0.40")``.
    """


SKIP_STATUS = 77  # a shell step that exits with this status is skipped (as automake's tests)


class Skip(Exception):
    """Raised by a Python step that decides, at run time, not to make its outputs.

    ``raise Skip("r2 0.31 is below 0.40")``: the step is reported as skipped with that
    reason, the steps that need its outputs are skipped too, and the build succeeds. A
    shell step does the same by exiting with status 77 (`SKIP_STATUS`); the last line it
    printed is the reason.
    """

    @property
    def reason(self) -> str:
        return str(self).strip() or "skipped"
