"""test_dr_shapes.py on the other pair of shapes (built-volume, named-bind-env), in a file of its own so the two pairs
run on separate workers. This pair's backups also go off-site (a real S3 server), the local backup directory is lost
with the server, and the disaster recovery runs with --from-remote."""
from support.dr import pair_tests

shapes, test_disaster_recovery_from_nothing = pair_tests(("built-volume", "named-bind-env"), 56875, s3_port=56790)
