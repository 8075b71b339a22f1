"""Error messages for people: one line, naming the file or flag, never a traceback."""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line. An error raised in a data-loader worker arrives with the worker's
    traceback in its message ("Caught X in DataLoader worker …"); its last line is the original message."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if len(lines) == 1:
        return lines[0]
    last = lines[-1]
    name = type(exc).__name__
    prefix = next((p for p in (f"{type(exc).__module__}.{name}: ", f"{name}: ") if last.startswith(p)), "")
    return last[len(prefix):]


class RunSetupError(ValueError):
    """A run that cannot start as asked (e.g. --num_epochs shrinking on resume); the message says why."""
