"""Placeholder entry point, replaced by the real CLI."""
import sys


def main(argv=None):
    print("stackops: not yet implemented", file=sys.stderr)
    return 2
