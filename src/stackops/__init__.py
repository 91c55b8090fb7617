"""The stackops command-line wrapper around the stackops.runbooks collection."""
__version__ = "0.1.0"
