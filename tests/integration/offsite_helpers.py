"""Moved to tests/support/offsite.py. Left for the test files that still import it from here (test_offsite*.py);
delete once they import support.offsite."""
from support.offsite import age_key, output_text, run_steps  # noqa: F401
