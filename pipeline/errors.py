"""The errors bitlite reports to users as one clear line instead of a traceback."""


class BitliteError(Exception):
    """A failure the user can act on; the CLI prints its message and exits non-zero."""

    exit_code = 1


class UsageError(BitliteError):
    """Bad command-line input: an unknown name, an invalid value, a missing run."""

    exit_code = 2


class DatasetUnavailableError(BitliteError):
    """A dataset is not on this machine and cannot be downloaded here."""


class ChecksumError(BitliteError):
    """A data file's SHA-256 does not match the published value."""


class TargetError(BitliteError):
    """A model cannot run there: target unreachable, tool or runtime missing, unsupported build."""


class ParityError(BitliteError):
    """Two runs of one model disagree: a .tflite vs its Keras model (export), or a
    target's outputs vs the host's for the same file and input (bench)."""


def unknown_choice(kind: str, value: str, choices: list[str]) -> UsageError:
    """The one-line message for an unknown model/method/dataset name."""
    return UsageError(f"unknown {kind} '{value}'; choose one of: {', '.join(sorted(choices))}")
