"""The command line of `stackops`: argparse only, no behaviour.

Every procedure subcommand comes from procedures.PROCEDURES; the other commands (history, demo,
schedule, ...) are added here and dispatched by name in cli.COMMANDS. Nothing here imports the
modules that run commands, so schedule.py can parse a command line to validate it without a cycle.
"""
import argparse

from . import __version__, exitcodes, history, init_options
from .procedures import PROCEDURES

EXIT_CODE_HELP = "exit codes:\n" + "\n".join("  %-4d %s" % pair for pair in exitcodes.DESCRIPTIONS)
COMMON_EXAMPLES = """\
examples:
  stackops health                                  # the embedded demo stack
  stackops health -i inventories/prod --limit web1 --json
  stackops backup && stackops backups
  stackops restore --backup-id latest --target-db appdb_check
  stackops maintenance --level weekly --check      # plan only
  stackops history show <RUN-ID>
  stackops schedule install backup --when daily

%s
""" % EXIT_CODE_HELP


def _common_options():
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument("-i", "--inventory", metavar="PATH",
                       help="inventory file or directory (default: the collection's inventories/demo)")
    group.add_argument("-e", "--extra-vars", action="append", default=[], metavar="VARS",
                       help="key=value pairs, a JSON/YAML mapping, or @file; repeatable, later wins")
    group.add_argument("--limit", metavar="PATTERN", help="only these hosts (ansible --limit pattern)")
    group.add_argument("--check", action="store_true", help="dry run: show what would change, change nothing")
    group.add_argument("--json", action="store_true",
                       help="print one JSON document with the outcome on stdout, nothing else")
    group.add_argument("-v", "--verbose", action="count", default=0,
                       help="per-host results while running; -vv and more raise ansible verbosity")
    group.add_argument("-y", "--yes", action="store_true",
                       help="consent to a destructive variant without a prompt (needed without a terminal)")
    group.add_argument("--wait", action="store_true",
                       help="if another procedure holds the stack lock, wait for it instead of failing")
    group.add_argument("--wait-timeout", type=float, metavar="SECONDS", help="give up waiting after this long")
    group.add_argument("--timeout", type=int, metavar="SECONDS", help="stop the procedure after this long")
    group.add_argument("--report", action="store_true",
                       help="also write the HTML report of the run (report.html in its history dir)")
    return common


def _add_procedure_option(parser, option):
    kwargs = {"help": option.help}
    if option.choices:
        kwargs["choices"] = option.choices
    if option.metavar and not option.choices:
        kwargs["metavar"] = option.metavar
    if option.kind == "int":
        kwargs["type"] = int
    if not option.flags:
        if not option.required:
            kwargs["nargs"] = "?"  # an optional positional, e.g. the NAME of `stackops pitr mark NAME`
        parser.add_argument(option.dest, **kwargs)
        return
    if option.kind in ("true", "false", "bool"):
        kwargs.pop("metavar", None)
        kwargs["action"] = "store_true"
    elif option.kind == "list":
        kwargs["action"] = "append"
    kwargs["dest"] = option.dest
    kwargs["required"] = option.required
    parser.add_argument(*option.flags, **kwargs)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="stackops", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the stackops.runbooks procedures (Ansible playbooks) with progress, "
                    "a run history and safe defaults.",
        epilog=COMMON_EXAMPLES)
    parser.add_argument("--version", action="version", version="stackops %s" % __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _common_options()
    for procedure in PROCEDURES:
        sub = commands.add_parser(
            procedure.name, parents=[common], help=procedure.help, description=procedure.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog="runs playbooks/%s\n\nexamples:\n%s\n\n%s" % (
                procedure.playbook, "\n".join("  " + example for example in procedure.examples), EXIT_CODE_HELP))
        group = sub.add_argument_group("%s options" % procedure.name)
        for option in procedure.options:
            _add_procedure_option(group, option)
        if procedure.name == "backups":
            _add_rpo_options(group)
        sub.set_defaults(procedure=procedure)

    # The other commands. Each has a handler of the same name in cli.COMMANDS.
    _add_history_parser(commands)
    _add_demo_parser(commands)
    _add_schedule_parser(commands)
    init_options.add_parser(commands)
    return parser


def _add_rpo_options(group):
    # CLI-side checks on the listing, not extra vars: see docs/report.md.
    group.add_argument("--rpo", metavar="DURATION",
                       help="warn when the newest verified backup is older than this (e.g. 24h, 90m, 2d)")
    group.add_argument("--rpo-strict", action="store_true",
                       help="with --rpo: exit 1 when the RPO is exceeded (for cron and monitoring)")


def _add_history_parser(commands):
    sub = commands.add_parser(
        "history", help="list past runs, or show one", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Every run (including ones refused for a lock or missing consent) is kept under the "
                    "state dir ($STACKOPS_STATE_DIR) with its ansible-runner artifacts; the newest "
                    "$STACKOPS_HISTORY_KEEP (default %d) are kept." % history.DEFAULT_KEEP,
        epilog="examples:\n  stackops history\n  stackops history --last 5 --json\n"
               "  stackops history show 20260102T030000-backup-1a2b\n  stackops history show 1a2b\n"
               "  stackops history report 1a2b                 # HTML report, see docs/report.md\n"
               "  stackops history report 1a2b --output /tmp/backup.html --rpo 24h")
    sub.add_argument("action", nargs="?", choices=("list", "show", "report"), default="list")
    sub.add_argument("run_id", nargs="?", help="run id (or its unique tail) for show and report")
    sub.add_argument("--output", metavar="FILE", help="with report: write here instead of <run dir>/report.html")
    sub.add_argument("--rpo", metavar="DURATION", help="with report: judge the newest verified backup against this RPO")
    sub.add_argument("--last", type=int, metavar="N", help="only the newest N runs")
    sub.add_argument("--json", action="store_true", help="machine-readable output")


def _add_demo_parser(commands):
    sub = commands.add_parser(
        "demo", help="the embedded demo stack: start it, show it, stop it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The collection embeds a small demo application (examples/stack: PostgreSQL, an API, "
                    "an nginx frontend) and an inventory for it (inventories/demo), the default target "
                    "of every procedure. `demo up` runs the startup procedure on it.",
        epilog="examples:\n  stackops demo up\n  stackops demo status\n  stackops health\n"
               "  stackops demo down            # keeps the data volume\n  stackops demo down --volumes")
    sub.add_argument("action", choices=("up", "status", "down"))
    sub.add_argument("--volumes", action="store_true", help="with down: also delete the data volumes")
    sub.add_argument("--json", action="store_true", help="with up: JSON outcome")
    sub.add_argument("-v", "--verbose", action="count", default=0)


def _add_schedule_parser(commands):
    epilog = """examples:
  stackops schedule install maintenance --when "Sun 03:00" -- --level weekly
  stackops schedule install backup --when daily
  stackops schedule install health --name health-hourly --when hourly -i inventories/prod -- --json
  stackops schedule list
  stackops schedule remove maintenance

--when: hourly | daily | weekly | monthly | HH:MM | 'Sun 03:00' | 'Mon..Fri 02:00' | 'Mon,Thu 04:30',
or any systemd OnCalendar expression (systemd) / five cron fields (cron).
Backend: systemd when it runs this machine (/run/systemd/system exists), else cron.d;
override with --backend or $STACKOPS_SCHEDULE_BACKEND. Files go to --unit-dir / $STACKOPS_SYSTEMD_UNIT_DIR
(default /etc/systemd/system, or ~/.config/systemd/user when not root) or --crontab / $STACKOPS_CRONTAB
(default /etc/cron.d/stackops)."""
    sub = commands.add_parser("schedule", help="run a procedure on a timer (systemd) or cron, without AWX",
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog,
                              description="Install, list and remove scheduled procedure runs. "
                                          "The scheduled command is a normal stackops run: it is recorded in "
                                          "`stackops history` and respects the stack lock.")
    actions = sub.add_subparsers(dest="schedule_action", metavar="ACTION", required=True)
    targets = argparse.ArgumentParser(add_help=False)
    targets.add_argument("--backend", choices=("systemd", "cron"))
    targets.add_argument("--unit-dir", metavar="DIR", help="where systemd units are written")
    targets.add_argument("--crontab", metavar="FILE", help="cron.d file holding the entries")
    targets.add_argument("--json", action="store_true", help="machine-readable output")

    install = actions.add_parser("install", parents=[targets], help="schedule a procedure",
                                 usage="stackops schedule install PROCEDURE --when WHEN [options] [-- ARGS...]",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog)
    install.add_argument("procedure", help="procedure to run, e.g. backup")
    install.add_argument("--when", required=True, help="when to run (see below)")
    install.add_argument("--name", help="schedule name (default: the procedure), unit stackops-NAME")
    install.add_argument("-i", "--inventory", metavar="PATH", help="inventory for the scheduled runs")
    install.add_argument("--limit", metavar="PATTERN")
    install.add_argument("--no-enable", action="store_true", help="write the units but do not enable the timer")
    # Arguments after "--" are split off in cli.main(): argparse mishandles "--" below subparsers.
    install.set_defaults(command_args=[])

    listing = actions.add_parser("list", parents=[targets], help="list installed schedules",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog)
    listing.set_defaults()
    remove = actions.add_parser("remove", parents=[targets], help="remove a schedule",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog)
    remove.add_argument("name")
