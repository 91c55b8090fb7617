"""The command line of `stackops init` (argparse only, no behaviour: see init.py)."""
import argparse

DESCRIPTION = ("Read an existing compose project (docker compose config) and write a commented inventory for it: "
               "the database service and its databases, the writer services, the services with fixed host ports, "
               "the health URLs. The password is never written into the inventory. See docs/your-stack.md.")
EXAMPLES = """\
examples:
  stackops init --check                                     # in the project directory: what it finds, writes nothing
  stackops init --project-dir /srv/shop -f docker-compose.prod.yml -f docker-compose.local.yml \\
      --env-file shop.env -o inventories/shop
  stackops health -i inventories/shop                       # the generated inventory, no edits
"""


def add_parser(commands):
    """Register `stackops init` on the subcommands of the main parser."""
    sub = commands.add_parser("init", help="write an inventory for an existing compose project",
                              description=DESCRIPTION, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.add_argument("--project-dir", metavar="DIR",
                     help="the compose project directory (default: the directory of the first -f file, else the current one)")
    sub.add_argument("-f", "--file", dest="files", action="append", default=[], metavar="FILE",
                     help="compose file, as for docker compose -f; repeatable, in order")
    sub.add_argument("--env-file", dest="env_files", action="append", default=[], metavar="FILE",
                     help="env file, as for docker compose --env-file; repeatable, later wins")
    sub.add_argument("--profile", dest="profiles", action="append", default=[], metavar="PROFILE",
                     help="compose profile to enable; repeatable")
    sub.add_argument("-o", "--output", metavar="DIR",
                     help="inventory directory to write (default: inventories/<project directory name>)")
    sub.add_argument("--db-service", metavar="SERVICE", help="the PostgreSQL service, when detection picks the wrong one")
    sub.add_argument("--backup-dir", metavar="DIR",
                     help="where backups go (default: <state dir>/backups/<project name>)")
    sub.add_argument("--host-name", metavar="NAME", help="inventory host name (default: the compose project name)")
    sub.add_argument("--check", action="store_true", help="print what was found; write nothing")
    sub.add_argument("--force", action="store_true", help="overwrite an existing inventory in the output directory")
    sub.add_argument("--json", action="store_true", help="print one JSON document with what was found and written")
    sub.add_argument("-v", "--verbose", action="count", default=0)
    return sub
