"""Where tests bind: every host port and compose project name of the suite goes through here.

Slot 0 (the default, what CI runs) uses the ports written in the test files, which scripts/bootstrap.sh reserves
from the kernel's ephemeral range. Another checkout on the same machine (a branch tested beside main) sets
STACKOPS_TEST_SLOT=1..7: its ports move, block for block, below the ephemeral range, and its compose projects get
the slot as a prefix, so two runs never touch each other's containers, volumes or ports.
"""
import os

SLOT = int(os.environ.get("STACKOPS_TEST_SLOT", "0") or 0)
if not 0 <= SLOT <= 7:
    raise ValueError("STACKOPS_TEST_SLOT must be 0..7, not %d" % SLOT)

# The slot-0 blocks the test files use; each maps to its own 1000 ports inside a slot's 3000.
_BLOCKS = (55000, 56000, 58000)


def port(number):
    """The host port a test file's slot-0 port ``number`` stands for in this run's slot."""
    if SLOT == 0:
        return number
    for index, start in enumerate(_BLOCKS):
        if start <= number < start + 1000:
            return 10000 + 3000 * (SLOT - 1) + 1000 * index + (number - start)
    raise ValueError("test port %d is outside the suite's blocks %s" % (number, _BLOCKS))


def port_range(first, stop):
    return range(port(first), port(stop - 1) + 1)


def project(name):
    """The compose project (and name prefix) a test file's ``name`` stands for in this run's slot."""
    return name if SLOT == 0 else "s%d-%s" % (SLOT, name)
