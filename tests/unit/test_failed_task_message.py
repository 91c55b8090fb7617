"""The error a procedure's report records for a failed task (filter failed_task_message, module_utils/caller_words)."""
from ansible_collections.stackops.runbooks.plugins.filter.results import FilterModule
from ansible_collections.stackops.runbooks.plugins.module_utils.caller_words import failed_task_message


def test_a_failed_loop_adds_its_failed_items_messages():
    result = {"msg": "One or more items failed", "results": [
        {"failed": False, "msg": "fine"}, {"failed": True, "msg": "s3: access denied"}, {"failed": True},
        {"skipped": True}]}
    assert failed_task_message(result) == "One or more items failed: s3: access denied; ?"


def test_a_plain_failure_keeps_its_message():
    assert failed_task_message({"msg": "cannot connect"}) == "cannot connect"
    assert FilterModule().filters()["failed_task_message"]({}) == "failed without a message"
