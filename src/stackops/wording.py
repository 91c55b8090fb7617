"""Refusals in the CLI user's words: the one place that turns inventory variables into the command's flags.

Roles and modules word a refusal with the inventory variables a playbook user sets
(`set stackops_restore_replace=true and stackops_restore_confirm=true`). A CLI user does not set variables but
types flags, so every message the CLI shows goes through `cli_words()`, which says each `stackops_x=value` as the
procedure's own flag, derived from its Option table in procedures.py (`--replace`, `--target-db NAME`), its consent
variable as `--yes`, and any other variable as `-e stackops_x=value`, which the command also accepts. Settings
joined by "and" or commas become one run of flags (`add --replace --yes`). New refusals need nothing here: any
variable a procedure's Option table maps is translated, any other one stays an `-e`.
"""
import re

from .extravars import as_bool

# One setting: a variable, "=", and a value (quoted, or up to the next blank or closing punctuation). Not one that
# is already a command line (`-e stackops_x=1`, or inside backticks).
SETTING = re.compile(r"(?<![\w`-])(?<!-e )(stackops_[a-z0-9_]+)=('[^']*'|\"[^\"]*\"|[^\s,;()`]+?)(?=[.,;:)]*(?:\s|$))")
JOINER = re.compile(r"^(?:,? and |, )$")
SET_VERB = re.compile(r"\bset $")


def _flag_for(procedure, variable, value):
    """The flags that set ``variable`` to ``value`` on ``procedure``'s command line, or None."""
    consent = getattr(procedure, "consent", None)
    if consent is not None and consent.variable == variable and as_bool(value):
        return "--yes"
    for option in getattr(procedure, "options", ()) or ():
        if option.variable != variable or not option.flags:
            continue
        flag = option.flags[0]
        if option.kind in ("true", "bool"):
            return flag if as_bool(value) else None
        if option.kind == "false":
            return None if as_bool(value) else flag
        return "%s %s" % (flag, value)
    return None


def say_setting(procedure, variable, value):
    """One setting as the CLI user types it: the flag, else ``-e variable=value``."""
    return _flag_for(procedure, variable, value) or "-e %s=%s" % (variable, value)


def cli_words(text, procedure):
    """``text`` with every run of ``stackops_x=value`` settings said as ``procedure``'s flags (see module doc)."""
    if not isinstance(text, str) or "stackops_" not in text:
        return text
    matches = list(SETTING.finditer(text))
    if not matches:
        return text
    runs, current = [], [matches[0]]
    for match in matches[1:]:
        if JOINER.match(text[current[-1].end():match.start()]):
            current.append(match)
        else:
            runs.append(current)
            current = [match]
    runs.append(current)
    out, position = [], 0
    for run in runs:
        start = run[0].start()
        before = text[position:start]
        if SET_VERB.search(before):
            before = SET_VERB.sub("add ", before)
        out.append(before)
        said = []
        for match in run:
            piece = say_setting(procedure, match.group(1), match.group(2))
            if piece not in said:
                said.append(piece)
        out.append(" ".join(said))
        position = run[-1].end()
    out.append(text[position:])
    return "".join(out)


def errors_in_cli_words(value, procedure):
    """``value`` (a procedure result) with every ``error`` string, at any depth, in cli_words()."""
    if isinstance(value, dict):
        return {key: cli_words(item, procedure) if key == "error" else errors_in_cli_words(item, procedure)
                for key, item in value.items()}
    if isinstance(value, list):
        return [errors_in_cli_words(item, procedure) for item in value]
    return value
