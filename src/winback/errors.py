"""Every error winback raises on purpose derives from WinbackError.

The CLI and the server turn a WinbackError into one line (its message) and exit code 2; anything else is a
bug and keeps its traceback. Subclasses say which part of the path refused, so callers can catch by kind.

WinbackError
├── ConfigError          a campaign, policy, mapping or setting that cannot be used as given
├── DataError            source rows or files that cannot be read or believed
├── StateError           winback's own database: missing, behind its migrations, or not writable
└── DeliveryError        sending could not go on (providers, send-time checks)
"""

from __future__ import annotations


class WinbackError(Exception):
    """An expected failure whose message alone tells the user what went wrong and what to do."""


class ConfigError(WinbackError, ValueError):
    """A campaign file, policy, source mapping or setting that cannot be used as given."""


class DataError(WinbackError, ValueError):
    """Input rows or files that cannot be read or believed."""


class StateError(WinbackError, RuntimeError):
    """winback's own database is missing, behind its migrations, or not writable."""


class DeliveryError(WinbackError, RuntimeError):
    """Sending could not go on: a provider or a send-time check refused."""
