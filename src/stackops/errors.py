"""Exceptions shared by the CLI modules; cli.main turns them into exit codes."""


class UsageError(Exception):
    """A problem with the command line or its files: exit code 2."""


class ReportError(Exception):
    """The run cannot be reported (no such directory, nothing recorded)."""
