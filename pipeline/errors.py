"""The errors bitlite reports to users as one clear line instead of a traceback.

Every command line exits with one convention (:func:`pipeline.cli.run` applies it):

- ``0``: success;
- ``2``: bad input — command-line usage, an invalid value in a file such as a grid, or a
  file or run that is missing, unreadable or corrupt (:class:`InputError`); nothing is
  created before the inputs are validated;
- ``1``: the inputs were fine but a check or a step failed — parity broken, the
  converter crashed, a bench target unreachable (:class:`BitliteError`,
  :class:`CheckFailed`);
- ``130``: interrupted (Ctrl-C).
"""

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class BitliteError(Exception):
    """A failure the user can act on; the CLI prints its message and exits non-zero."""

    exit_code = EXIT_FAILED


class InputError(BitliteError):
    """Bad input: a value, file, run or dataset the command cannot use as given."""

    exit_code = EXIT_BAD_INPUT


class UsageError(InputError):
    """Bad command-line input: an unknown name, an invalid value, a missing run."""


class CorruptFileError(InputError):
    """A file exists but cannot be read as what it should be (model.keras, .tflite, …)."""


class DatasetUnavailableError(InputError):
    """A dataset is not on this machine (or not where --data-dir says) and cannot be
    downloaded here."""


class ChecksumError(InputError):
    """A data file's SHA-256 does not match the published value, or it does not parse."""


class TargetError(BitliteError):
    """A model cannot run there: target unreachable, tool or runtime missing, unsupported
    build (exit 1: the inputs were valid, the environment failed)."""


class CheckFailed(BitliteError):
    """A check on valid inputs failed (e.g. parity); exit 1."""


class ParityError(CheckFailed):
    """Two runs of one model disagree: a .tflite vs its Keras model (export), or a
    target's outputs vs the host's for the same file and input (bench)."""


def unknown_choice(kind: str, value: str, choices: list[str]) -> UsageError:
    """The one-line message for an unknown model/method/dataset name."""
    return UsageError(f"unknown {kind} '{value}'; choose one of: {', '.join(sorted(choices))}")
