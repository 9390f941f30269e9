"""One exception tree. Every error says what went wrong and what the user can do.

The CLI prints ``str(error)`` as a single line and exits with ``error.exit_code``;
nothing below ``LabmgrError`` should ever reach the user as a traceback.
"""

from __future__ import annotations


class LabmgrError(Exception):
    """Base of every error labmgr reports to a user."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class SpecError(LabmgrError):
    """An input file (environment spec, image recipe) is malformed or inconsistent."""


class RecipeError(SpecError):
    """An image recipe is malformed."""


class HypervisorError(LabmgrError):
    """libvirt could not be reached or refused an operation."""


class NotFoundError(LabmgrError):
    """A named thing (domain, lab, snapshot, image) does not exist."""


class AgentError(HypervisorError):
    """The QEMU guest agent did not answer or a command in the guest failed."""


class ImageBuildError(LabmgrError):
    """Building a guest image failed."""


class SnapshotError(LabmgrError):
    """Capturing or reading a snapshot failed."""


class LabError(LabmgrError):
    """A lab could not be brought up, found, or torn down."""


class ReportError(LabmgrError):
    """A report could not be written (e.g. its PDF could not be printed)."""


class BusyError(LabmgrError):
    """Another labmgr process is working on the same thing (holds its lock)."""
