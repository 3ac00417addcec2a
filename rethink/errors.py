"""User-facing errors: a one-paragraph message naming the bad value and the fix, printed without a stack trace."""


class UserError(Exception):
    """Bad input from the user (config, data, checkpoint); the CLI prints the message and exits with status 2."""
