"""Moved to tests/support/backup.py. Left for the test files that still import it from here (test_offsite*.py);
delete once they import support.backup."""
from support.backup import *  # noqa: F401,F403
