"""The one error type the command line turns into a single ``esrepro: error: ...`` line (exit 2).

Every check of user input (config files, command-line arguments, cluster files) and of files read
back (checkpoints, run files) raises a subclass of ``InputError`` whose message names the key or
file and the value, before any work starts or before a damaged file is used."""


class InputError(ValueError):
    """Bad input or a damaged file; the message is one line naming the key or file and the value."""


class RunFailed(RuntimeError):
    """A run cannot go on (e.g. its workers cannot be brought up to date); the message is one line
    saying what happened and what to do."""
