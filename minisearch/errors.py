"""The one error type a user sees: what went wrong, where, and what to do (with the nearest valid
name when a name was wrong).

>>> nearest("sfy", ["world", "sft", "dapo"])
" (did you mean 'sft'?)"
"""

import difflib
import functools
import sys


class UserError(Exception):
    """A problem with the user's input or environment, not a bug.

    The CLI prints the message (no traceback) and exits with status 2.
    Say what was wrong, where (file, line, key) and what to do about it.
    """


def user_errors(fn):
    """For CLI commands: turn UserError into a clean message and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            import click

            click.echo(f"error: {e}", err=True)
            sys.exit(2)

    return wrapper


def nearest(key: str, valid) -> str:
    """' (did you mean X?)' for the closest valid key, or ''."""
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""
