# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Selective restore: table names as users write them, and the pg_restore list entries a selection needs."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError


TABLE_ENTRY_TYPES = ('TABLE', 'TABLE DATA', 'DEFAULT', 'COMMENT', 'SEQUENCE', 'SEQUENCE OWNED BY', 'SEQUENCE SET')
# Entries whose tag is the table's own name: the table itself, its rows, its RLS switch, attaching it as a partition.
OWN_NAME_TYPES = ('TABLE', 'TABLE DATA', 'ROW SECURITY', 'TABLE ATTACH', 'FOREIGN TABLE', 'ACL')
# Entries whose tag is '<table> <object>': what pg_dump dumps as part of one table.
ON_TABLE_TYPES = ('DEFAULT', 'CONSTRAINT', 'FK CONSTRAINT', 'CHECK CONSTRAINT', 'TRIGGER', 'RULE', 'POLICY')
# Entries of objects that belong to a table but are named on their own (the manifest's ``relations`` says whose).
OWNED_TYPES = ('SEQUENCE', 'SEQUENCE OWNED BY', 'SEQUENCE SET', 'INDEX', 'INDEX ATTACH', 'STATISTICS')
# Every entry type that lives in a schema (second field); with schemas= all of them come along.
SCHEMA_ENTRY_TYPES = tuple(sorted(set(OWN_NAME_TYPES + ON_TABLE_TYPES + OWNED_TYPES + (
    'COMMENT', 'SECURITY LABEL', 'VIEW', 'MATERIALIZED VIEW', 'MATERIALIZED VIEW DATA', 'FUNCTION', 'PROCEDURE',
    'AGGREGATE', 'TYPE', 'SHELL TYPE', 'DOMAIN', 'COLLATION', 'CONVERSION', 'OPERATOR', 'OPERATOR CLASS',
    'OPERATOR FAMILY', 'TEXT SEARCH CONFIGURATION', 'TEXT SEARCH DICTIONARY', 'TEXT SEARCH PARSER',
    'TEXT SEARCH TEMPLATE', 'DEFAULT ACL', 'EXTENDED STATISTICS')), key=len, reverse=True))


def parse_table_name(text):
    """'schema.table' or 'table' (public); a quoted part may contain dots: '"my.schema"."T"'."""
    parts, current, quoted, index = [], '', False, 0
    while index < len(text):
        char = text[index]
        if char == '"':
            if quoted and text[index + 1:index + 2] == '"':
                current += '"'
                index += 1
            else:
                quoted = not quoted
        elif char == '.' and not quoted:
            parts.append(current)
            current = ''
        else:
            current += char
        index += 1
    parts.append(current)
    if quoted or len(parts) > 2 or not all(parts):
        raise BackupError('table %r is not "schema.table" or "table"; quote parts that contain dots with double quotes' % text)
    return tuple(parts) if len(parts) == 2 else ('public', parts[0])


def expand_selection(manifest, tables):
    """The chosen tables plus, for partitioned ones, every partition below them (from the manifest's
    ``relations``), so their rows are restored and counted: a partitioned table holds no rows itself."""
    children = {}
    for relation in manifest.get('relations') or []:
        children[(relation['schema'], relation['name'])] = [tuple(child) for child in relation.get('partitions') or []]
    chosen, todo = [], list(tables)
    while todo:
        table = todo.pop(0)
        if table in chosen:
            continue
        chosen.append(table)
        todo.extend(children.get(table, []))
    return chosen


def select_toc(toc_text, tables, schemas, relations=None):
    """Keep the pg_restore -l entries that make up the chosen tables and schemas.

    A line is ``id; tableoid oid TYPE schema name owner``; names may contain spaces, so
    entries are matched by prefix against each wanted (type, schema, name) instead of split.
    A schema brings everything in it and its own entry, ACL and comment; a table brings its rows, defaults,
    constraints, triggers, rules, RLS and policies, partition attachment, and what ``relations`` (the manifest's)
    names as its own: its serial and identity sequences, indexes and statistics objects.
    """
    wanted_schemas = set(schemas)
    needed_schemas = set(wanted_schemas) | set(schema for schema, dummy in tables)
    owned = {}
    for relation in relations or []:
        owned[(relation['schema'], relation['name'])] = [tuple(item) for item in relation.get('owned') or []]
    prefixes = []
    for schema in needed_schemas:
        prefixes += ['SCHEMA - %s ' % schema, 'ACL - SCHEMA %s ' % schema, 'COMMENT - SCHEMA %s ' % schema]
    for schema in wanted_schemas:
        prefixes += ['%s %s ' % (kind, schema) for kind in SCHEMA_ENTRY_TYPES]
    for schema, name in tables:
        prefixes += ['%s %s %s ' % (kind, schema, name) for kind in OWN_NAME_TYPES + TABLE_ENTRY_TYPES]
        prefixes += ['%s %s %s ' % (kind, schema, name) for kind in ON_TABLE_TYPES]
        prefixes += ['COMMENT %s TABLE %s ' % (schema, name), 'COMMENT %s COLUMN %s.' % (schema, name),
                     'ACL %s COLUMN %s.' % (schema, name)]
        for item_schema, item_name in owned.get((schema, name), []):
            prefixes += ['%s %s %s ' % (kind, item_schema, item_name) for kind in OWNED_TYPES]
    prefixes = tuple(prefixes)
    kept = []
    for line in toc_text.splitlines():
        if not line.strip() or line.startswith(';'):
            continue
        head, sep, rest = line.partition('; ')
        fields = rest.split(' ', 2)
        if not sep or len(fields) < 3:
            continue
        entry = fields[2]
        # Extensions come along whatever is chosen: restored columns may use their types.
        keep = entry.startswith('EXTENSION ') or entry.startswith('COMMENT - EXTENSION ')
        if keep or entry.startswith(prefixes):
            kept.append(line)
    return kept
