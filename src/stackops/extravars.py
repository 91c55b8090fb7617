"""Parsing of -e/--extra-vars the way ansible-playbook accepts them, minus secrets."""
import json
import re
import shlex
from pathlib import Path

import yaml

# Extra vars are written into ansible-runner's artifacts (the command line is recorded),
# so anything that looks like a credential is refused; secrets travel in files instead.
SECRET_NAME = re.compile(r"(passw(or)?d|secret|token|api_?key|private_?key|credential)", re.IGNORECASE)
# A variable naming where a secret lives (stackops_db_password_file) is fine.
FILE_SUFFIXES = ("_file", "_path", "_dir")
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TRUE_WORDS = {"true", "yes", "on", "1", "y"}


class ExtraVarsError(ValueError):
    """An -e value that cannot be parsed or must not be passed."""


def parse_one(text):
    """One -e value: '@file' (YAML/JSON), a JSON/YAML mapping, or 'key=value key2=value2'."""
    text = text.strip()
    if not text:
        raise ExtraVarsError("empty --extra-vars value")
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        try:
            loaded = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ExtraVarsError("cannot read extra vars file %s: %s" % (path, exc.strerror)) from exc
        except yaml.YAMLError as exc:
            raise ExtraVarsError("extra vars file %s is not valid YAML/JSON: %s" % (path, exc)) from exc
        if loaded is None:
            return {}
        if not isinstance(loaded, dict):
            raise ExtraVarsError("extra vars file %s must hold a mapping, not %s" % (path, type(loaded).__name__))
        return loaded
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError:
            try:
                loaded = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ExtraVarsError("extra vars %r are neither JSON nor YAML: %s" % (text, exc)) from exc
        if not isinstance(loaded, dict):
            raise ExtraVarsError("extra vars %r must be a mapping" % text)
        return loaded
    result = {}
    for token in shlex.split(text):
        key, sep, value = token.partition("=")
        if not sep:
            raise ExtraVarsError("extra var %r is not key=value, JSON, or @file" % token)
        result[key] = value
    return result


def parse_all(values):
    merged = {}
    for value in values or ():
        merged.update(parse_one(value))
    check_names(merged)
    return merged


def check_names(variables):
    for name in variables:
        if not VARIABLE_NAME.match(str(name)):
            raise ExtraVarsError("%r is not a valid variable name" % name)
        if SECRET_NAME.search(str(name)) and not str(name).endswith(FILE_SUFFIXES):
            raise ExtraVarsError(
                "refusing to pass %r as an extra var: extra vars are stored in the run history. "
                "Put the secret in a file and point the inventory at it (e.g. stackops_db_password_file)" % name)


def as_bool(value):
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).strip().lower() in TRUE_WORDS
