"""The command line's one error of its own: an option that cannot work. `main` prints it as one line and exits 2."""


class UsageError(Exception):
    """A command line that cannot work (a bad value, a missing companion option); the message names the option."""
