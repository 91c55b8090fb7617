"""Disaster recovery from nothing on shapes unlike ours (built-bind, named-unpublished; the other two in
test_dr_shapes_pair2.py): an inventory from stackops init, backup --all-databases, restore --replace, then down -v and
restore --all-databases --yes WITHOUT --replace, the state and the app back as they were, and a second DR onto
content refused naming --replace --yes (issue 20, failed 2 and 3; the steps are in support/dr.py)."""
from support.dr import pair_tests

shapes, test_disaster_recovery_from_nothing = pair_tests(("built-bind", "named-unpublished"), 56871)
