"""Shared harness for the stackops benchmarks (see benchmarks/README.md)."""
