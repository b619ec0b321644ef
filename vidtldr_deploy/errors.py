"""One exception type for every user-facing failure, so the CLI can print it and exit non-zero."""


class VidTLDRError(Exception):
    """A problem the user can fix: the message names the problem and the fix."""
