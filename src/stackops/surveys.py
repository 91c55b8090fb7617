"""Validation of AWX job template survey specs (awx/surveys/*.yml) before they reach a controller.

Mirrors the rules the AWX API applies to a survey_spec, so a broken survey fails in CI
instead of in `awx/configure.yml` against a live controller.
"""
import keyword
import re

TYPES = ("text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect")
CHOICE_TYPES = ("multiplechoice", "multiselect")
NUMERIC_TYPES = ("integer", "float")
LENGTH_TYPES = ("text", "textarea", "password")
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REQUIRED_ITEM_KEYS = ("question_name", "variable", "type", "required")


def _choices(item):
    choices = item.get("choices")
    if isinstance(choices, str):
        # AWX also accepts choices as one newline-separated string.
        return [line for line in choices.split("\n") if line]
    return choices


def _is_number(value, kind):
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int)
    return isinstance(value, (int, float))


def validate_item(index, item):
    where = "spec[%d]" % index
    if not isinstance(item, dict):
        return ["%s must be a mapping" % where]
    errors = []
    for key in REQUIRED_ITEM_KEYS:
        if key not in item:
            errors.append("%s: '%s' is required" % (where, key))
    variable = item.get("variable")
    if variable is not None:
        where = "spec[%d] (%s)" % (index, variable)
        if not isinstance(variable, str) or not VARIABLE.match(variable) or keyword.iskeyword(variable):
            errors.append("%s: variable %r is not a valid variable name" % (where, variable))
    if "required" in item and not isinstance(item["required"], bool):
        errors.append("%s: required must be true or false" % where)
    if "question_name" in item and not (isinstance(item["question_name"], str) and item["question_name"].strip()):
        errors.append("%s: question_name must be a non-empty string" % where)
    kind = item.get("type")
    if kind is None:
        return errors
    if kind not in TYPES:
        return errors + ["%s: type %r is not one of %s" % (where, kind, ", ".join(TYPES))]
    default = item.get("default")
    has_default = default not in (None, "")

    if kind in CHOICE_TYPES:
        choices = _choices(item)
        if not isinstance(choices, list) or not choices:
            errors.append("%s: %s needs a non-empty list of choices" % (where, kind))
            return errors
        if any(not isinstance(choice, str) for choice in choices):
            errors.append("%s: choices must be strings (quote yes/no/numbers in YAML)" % where)
        if len(set(map(str, choices))) != len(choices):
            errors.append("%s: choices contain duplicates" % where)
        if has_default:
            defaults = default.split("\n") if (kind == "multiselect" and isinstance(default, str)) else (
                default if isinstance(default, list) else [default])
            if kind == "multiplechoice" and len(defaults) != 1:
                errors.append("%s: multiplechoice takes one default" % where)
            for value in defaults:
                if value not in choices:
                    errors.append("%s: default %r is not among the choices %s" % (where, value, choices))
    elif "choices" in item and item["choices"] not in (None, "", []):
        errors.append("%s: choices only apply to multiplechoice/multiselect, not %s" % (where, kind))

    bounds = {}
    for key in ("min", "max"):
        if key in item and item[key] not in (None, ""):
            value = item[key]
            numeric_kind = kind if kind in NUMERIC_TYPES else "integer"
            if not _is_number(value, numeric_kind):
                errors.append("%s: %s must be %s" % (where, key, "an integer" if numeric_kind == "integer"
                                                      else "a number"))
            else:
                bounds[key] = value
    if kind in LENGTH_TYPES and any(value < 0 for value in bounds.values()):
        errors.append("%s: min/max are lengths for %s and cannot be negative" % (where, kind))
    if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
        errors.append("%s: min %s is greater than max %s" % (where, bounds["min"], bounds["max"]))

    if kind in NUMERIC_TYPES and has_default:
        if not _is_number(default, kind):
            errors.append("%s: default %r is not %s" % (where, default, "an integer" if kind == "integer"
                                                         else "a number"))
        elif ("min" in bounds and default < bounds["min"]) or ("max" in bounds and default > bounds["max"]):
            errors.append("%s: default %s is outside min/max [%s, %s]" % (
                where, default, bounds.get("min"), bounds.get("max")))
    if kind in LENGTH_TYPES and has_default:
        if not isinstance(default, str):
            errors.append("%s: default of a %s question must be a string" % (where, kind))
        elif ("min" in bounds and len(default) < bounds["min"]) or ("max" in bounds and len(default) > bounds["max"]):
            errors.append("%s: default %r length is outside min/max [%s, %s]" % (
                where, default, bounds.get("min"), bounds.get("max")))
    if kind == "password" and has_default and default != "$encrypted$":
        errors.append("%s: a password question must not carry a clear-text default" % where)
    return errors


def validate_survey(spec):
    """All problems with one survey spec, as messages; an empty list means AWX will accept it."""
    if not isinstance(spec, dict):
        return ["a survey spec must be a mapping with name, description and spec"]
    errors = []
    for key in ("name", "description", "spec"):
        if key not in spec:
            errors.append("'%s' is required" % key)
    if "name" in spec and not isinstance(spec["name"], str):
        errors.append("name must be a string")
    if "description" in spec and not isinstance(spec["description"], str):
        errors.append("description must be a string")
    items = spec.get("spec")
    if "spec" in spec and (not isinstance(items, list) or not items):
        errors.append("spec must be a non-empty list of questions")
        return errors
    seen = set()
    for index, item in enumerate(items or []):
        errors.extend(validate_item(index, item))
        variable = item.get("variable") if isinstance(item, dict) else None
        if variable in seen:
            errors.append("spec[%d]: variable %r is asked twice" % (index, variable))
        seen.add(variable)
    return errors
