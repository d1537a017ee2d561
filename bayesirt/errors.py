"""The project's error and warning classes (standard library only; shipped in the bundles).

A :class:`InputError` is something the user can fix: a bad file, value or option. The CLI
prints it as one line naming the file and value, and exits 2. Any other exception is a bug
and is shown as one (with its traceback), never disguised as a user error.

``InputError`` subclasses ``ValueError`` so that code catching ``ValueError`` around
validation keeps working. Modules shipped in the submission bundles import it relatively
(``from .errors import InputError`` / ``from ..errors import InputError``), so the same
file serves the package and the bundle's ``bayesirt_runtime/``.
"""

from __future__ import annotations

__all__ = ["InputError", "InputWarning"]


class InputError(ValueError):
    """A user-fixable problem with an input: the message names the file/field and value."""


class InputWarning(UserWarning):
    """Input accepted, but not as the user may expect (one readable line says what is done)."""
