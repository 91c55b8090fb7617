"""The CLI says refusals in its own words: every stackops_x=value a role or module names becomes the procedure's
flag, derived from procedures.py's Option table (src/stackops/wording.py), else an -e."""
from stackops.events import RunTracker
from stackops.procedures import BY_NAME, PROCEDURES
from stackops.wording import cli_words, errors_in_cli_words, say_setting

RESTORE = BY_NAME["restore"]


def test_replace_and_confirm_become_replace_yes():
    text = ("restoring backup group G replaces databases that are not empty: app (objects table public.t); set "
            "stackops_restore_replace=true and stackops_restore_confirm=true to go ahead. Nothing was changed.")
    assert cli_words(text, RESTORE) == (
        "restoring backup group G replaces databases that are not empty: app (objects table public.t); add "
        "--replace --yes to go ahead. Nothing was changed.")


def test_a_variable_without_a_flag_stays_an_extra_var():
    assert cli_words("or set stackops_restore_require_verified=false to restore it anyway", RESTORE) == \
        "or add -e stackops_restore_require_verified=false to restore it anyway"
    assert cli_words("(stackops_restore_group_id=ID) or set stackops_restore_allow_incomplete=true.", RESTORE) == \
        "(--group-id ID) or add -e stackops_restore_allow_incomplete=true."


def test_every_flag_of_every_procedure_is_derived_from_its_option_table():
    seen = 0
    for procedure in PROCEDURES:
        for option in procedure.options:
            if not option.flags:
                assert say_setting(procedure, option.variable, "x") == "-e %s=x" % option.variable
                continue
            seen += 1
            if option.kind in ("true", "bool"):
                assert say_setting(procedure, option.variable, "true") == option.flags[0]
                assert say_setting(procedure, option.variable, "false") == "-e %s=false" % option.variable
            elif option.kind == "false":
                assert say_setting(procedure, option.variable, "false") == option.flags[0]
            else:
                assert say_setting(procedure, option.variable, "V") == "%s V" % option.flags[0]
        if procedure.consent:
            assert say_setting(procedure, procedure.consent.variable, "true") == "--yes"
    assert seen > 10
    assert say_setting(BY_NAME["backup"], "stackops_backup_physical", "true") == "--physical"
    assert say_setting(BY_NAME["backup"], "stackops_backup_verify", "false") == "--no-verify"
    # A variable of another procedure is an -e on this one's command line.
    assert say_setting(BY_NAME["backup"], "stackops_restore_replace", "true") == "-e stackops_restore_replace=true"


def test_command_lines_and_bare_names_are_left_alone():
    for text in ("run `stackops pitr enable -e stackops_pitr_synchronous=false` to stop waiting",
                 "pass -e stackops_backup_verify=true", "set stackops_writer_services in the inventory",
                 "(stackops_scaling_allow_zero)", "no variables here", None):
        assert cli_words(text, RESTORE) == text


def test_the_run_summary_says_flags_where_the_user_reads_it():
    """Failed task messages (also the live FAILED lines) and every result's error go through cli_words."""
    tracker = RunTracker(words=lambda text: cli_words(text, RESTORE))
    event = {"event": "runner_on_failed", "event_data": {"host": "h", "task": "t", "res": {
        "msg": "database app already exists on x and is not empty (objects table public.t); set "
               "stackops_restore_replace=true and stackops_restore_confirm=true to swap it"}}}
    line = tracker.handle(event)
    assert "add --replace --yes to swap it" in line
    assert tracker.failed_tasks[0]["message"].endswith("add --replace --yes to swap it")
    result = {"h": {"error": "set stackops_restore_confirm=true", "database": "stackops_restore_confirm=true",
                    "nested": [{"error": "set stackops_restore_backup_id=X"}]}}
    assert errors_in_cli_words(result, RESTORE) == {"h": {
        "error": "add --yes", "database": "stackops_restore_confirm=true", "nested": [{"error": "add --backup-id X"}]}}
