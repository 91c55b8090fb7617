"""Exit codes of the stackops command (documented in docs/cli.md)."""
OK = 0
FAILED = 1            # the procedure ran and failed (or could not start: syntax error, timeout)
USAGE = 2             # bad command line, unknown inventory, invalid extra vars
UNREACHABLE = 3       # at least one host could not be reached
LOCKED = 4            # another procedure holds the stack lock
REFUSED = 5           # a destructive procedure was not confirmed
INTERRUPTED = 130     # Ctrl-C / SIGTERM

DESCRIPTIONS = (
    (OK, "success"),
    (FAILED, "procedure failed"),
    (USAGE, "bad usage"),
    (UNREACHABLE, "a host was unreachable"),
    (LOCKED, "another procedure holds the stack lock"),
    (REFUSED, "confirmation refused (or --yes missing without a terminal)"),
    (INTERRUPTED, "interrupted"),
)
