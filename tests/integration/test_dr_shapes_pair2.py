"""test_dr_shapes.py on the other pair of shapes (built-volume, named-bind-env), in a file of its own so the two pairs
run on separate workers."""
from support.dr import pair_tests

shapes, test_disaster_recovery_from_nothing = pair_tests(("built-volume", "named-bind-env"), 56875)
