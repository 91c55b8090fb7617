# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Databases as a whole: creating, dropping and describing them, and counting and checksumming their tables."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.stackops.runbooks.plugins.module_utils.pg import connect, connect_server, sql

# Every connection that counts or hashes rows renders them the same way, whatever the server, database or role
# configures: row::text of a timestamptz, float, bytea, interval or money depends on these, and a scratch database
# has none of the source's settings.
STATS_SESSION_OPTIONS = ' '.join('-c %s=%s' % pair for pair in (
    ('TimeZone', 'UTC'), ('DateStyle', 'ISO,MDY'), ('IntervalStyle', 'postgres'), ('extra_float_digits', '1'),
    ('bytea_output', 'hex'), ('search_path', 'pg_catalog'), ('lc_monetary', 'C')))

# Settings whose list elements pg_db_role_setting stores as quoted identifiers (pg_dump's variable_is_guc_list_quote):
# 'a, b' in the catalog means two elements, and must be set again as two.
LIST_QUOTE_SETTINGS = ('local_preload_libraries', 'search_path', 'session_preload_libraries',
                       'shared_preload_libraries', 'temp_tablespaces', 'unix_socket_directories')


def connect_for_stats(params, dbname, **kwargs):
    """A connection whose row rendering does not depend on session settings (see STATS_SESSION_OPTIONS)."""
    return connect(params, dbname=dbname, options=STATS_SESSION_OPTIONS, **kwargs)


def user_tables(conn):
    """Ordinary tables outside system and extension schemas, as (schema, name) pairs."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%' "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
        "AND d.objid = c.oid AND d.deptype = 'e') ORDER BY 1, 2").fetchall()
    return [(row[0], row[1]) for row in rows]


USER_SCHEMA = ("{n}.nspname NOT IN ('pg_catalog', 'information_schema') AND {n}.nspname NOT LIKE 'pg\\_toast%%' "
               "AND {n}.nspname NOT LIKE 'pg\\_temp%%'")


def relation_map(conn):
    """Per table, what a selective restore of it must bring along that pg_dump names on its own: owned sequences
    (serial and identity), indexes, statistics objects, and for a partitioned table its direct partitions."""
    relations = {}

    def add(schema, name, key, item):
        entry = relations.setdefault((schema, name), dict(schema=schema, name=name, owned=[], partitions=[]))
        entry[key].append(list(item))

    owned = conn.execute(
        "SELECT tn.nspname, t.relname, o.nspname, oc.relname FROM ("
        " SELECT x.indrelid AS table_oid, x.indexrelid AS object_oid FROM pg_index x"
        " UNION ALL SELECT d.refobjid, d.objid FROM pg_depend d JOIN pg_class s ON s.oid = d.objid"
        "  WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')"
        "  AND s.relkind = 'S') AS own"
        " JOIN pg_class t ON t.oid = own.table_oid JOIN pg_namespace tn ON tn.oid = t.relnamespace"
        " JOIN pg_class oc ON oc.oid = own.object_oid JOIN pg_namespace o ON o.oid = oc.relnamespace"
        " WHERE " + USER_SCHEMA.format(n='tn') +
        " UNION ALL SELECT tn.nspname, t.relname, sn.nspname, s.stxname FROM pg_statistic_ext s"
        " JOIN pg_class t ON t.oid = s.stxrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace"
        " JOIN pg_namespace sn ON sn.oid = s.stxnamespace WHERE " + USER_SCHEMA.format(n='tn') + " ORDER BY 1, 2, 3, 4"
    ).fetchall()
    for table_schema, table_name, schema, name in owned:
        add(table_schema, table_name, 'owned', (schema, name))
    partitions = conn.execute(
        "SELECT pn.nspname, p.relname, cn.nspname, c.relname FROM pg_inherits i"
        " JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace"
        " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace"
        " WHERE p.relkind IN ('p', 'I') AND " + USER_SCHEMA.format(n='pn') + " ORDER BY 1, 2, 3, 4").fetchall()
    for parent_schema, parent_name, schema, name in partitions:
        add(parent_schema, parent_name, 'partitions', (schema, name))
    return [relations[key] for key in sorted(relations)]


def database_search_path(conn):
    """The search_path the sessions of the connected database get from its settings (per role and database, per
    role, per database, in PostgreSQL's order), else the built-in default: what its functions were written for."""
    rows = conn.execute(
        "SELECT s.setdatabase <> 0, s.setrole <> 0, c FROM pg_catalog.pg_db_role_setting s, "
        "pg_catalog.unnest(s.setconfig) AS c WHERE s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database "
        "WHERE datname = pg_catalog.current_database())) AND s.setrole IN (0, (SELECT oid FROM pg_catalog.pg_roles "
        "WHERE rolname = CURRENT_USER)) AND c LIKE 'search\\_path=%%'").fetchall()
    rank = {(True, True): 0, (False, True): 1, (True, False): 2}
    for dummy, dummy2, setting in sorted(rows, key=lambda row: rank.get((row[0], row[1]), 3)):
        return setting.split('=', 1)[1]
    return conn.execute("SELECT boot_val FROM pg_catalog.pg_settings WHERE name = 'search_path'").fetchone()[0]


def name_resolution_error(exc):
    """An error of a name not found (class 42: undefined function, table, object, ...)."""
    return (getattr(exc, 'sqlstate', None) or '').startswith('42')


def table_stats(conn, tables, content=False, fallback_path=None, paths=None):
    """Exact row counts and optionally an order-independent content checksum per table.

    The checksum sums two 60-bit slices of md5(row::text) over all rows: it needs no sort
    and no memory proportional to the table, and a changed, missing or extra row changes it.

    The queries run with the pinned search_path of connect_for_stats and name everything they use with its schema.
    Planning them loads the table's index expressions and predicates, and a SQL function there is inlined with the
    session's search_path: one whose body names objects of its own schema unqualified cannot be planned with
    pg_catalog alone. Such a table (the error is caught in a savepoint, so an exported snapshot survives it) is
    counted with ``fallback_path``, the database's own search_path, and the entry says so (``search_path``);
    ``paths`` ({(schema, name): path}, from a manifest) counts a table with the path it was counted with at backup.
    """
    stats = []
    for schema, name in tables:
        ident = sql.Identifier(schema, name)
        if content:
            query = sql.SQL(
                "SELECT pg_catalog.count(*), coalesce(pg_catalog.sum(('x' OPERATOR(pg_catalog.||) "
                "pg_catalog.substr(h, 1, 15))::pg_catalog.bit(60)::pg_catalog.int8::pg_catalog.numeric), 0)"
                "::pg_catalog.text "
                "OPERATOR(pg_catalog.||) '-' OPERATOR(pg_catalog.||) coalesce(pg_catalog.sum(('x' "
                "OPERATOR(pg_catalog.||) pg_catalog.substr(h, 16, 15))::pg_catalog.bit(60)::pg_catalog.int8"
                "::pg_catalog.numeric), 0)::pg_catalog.text "
                "FROM (SELECT pg_catalog.md5(t::pg_catalog.text) AS h FROM {} AS t) AS s").format(ident)
        else:
            query = sql.SQL("SELECT pg_catalog.count(*), NULL FROM {}").format(ident)
        path = (paths or {}).get((schema, name))
        try:
            count, checksum = counted(conn, query, path)
        except Exception as exc:
            if path is not None or fallback_path is None or not name_resolution_error(exc):
                raise
            path = fallback_path
            count, checksum = counted(conn, query, path)
        entry = dict(schema=schema, name=name, rows=int(count))
        if content:
            entry['content_checksum'] = checksum
        if path is not None:
            entry['search_path'] = path
        stats.append(entry)
    return stats


def counted(conn, query, path=None):
    """One row of ``query`` in a savepoint (or a transaction of its own), with ``path`` as search_path if given."""
    with conn.transaction():
        if path is None:
            return conn.execute(query).fetchone()
        # Transaction-local, and set back before the savepoint is released: a released savepoint keeps it.
        pinned = conn.execute("SELECT pg_catalog.current_setting('search_path')").fetchone()[0]
        conn.execute("SELECT pg_catalog.set_config('search_path', %s, true)", (path,))
        row = conn.execute(query).fetchone()
        conn.execute("SELECT pg_catalog.set_config('search_path', %s, true)", (pinned,))
        return row


def compare_tables(expected, actual, content=True):
    """Differences between manifest tables and a restored database, as readable strings."""
    differences = []
    have = dict(((t['schema'], t['name']), t) for t in actual)
    for table in expected:
        key = (table['schema'], table['name'])
        label = '%s.%s' % key
        got = have.pop(key, None)
        if got is None:
            differences.append('%s: missing after restore' % label)
            continue
        if got['rows'] != table['rows']:
            differences.append('%s: %d rows after restore, manifest says %d' % (label, got['rows'], table['rows']))
        elif content and table.get('content_checksum') and got.get('content_checksum') != table['content_checksum']:
            differences.append('%s: content checksum differs from the manifest' % label)
    for key in sorted(have):
        differences.append('%s.%s: present after restore but not in the manifest' % key)
    return differences


def database_exists(conn, name):
    return conn.execute('SELECT 1 FROM pg_database WHERE datname = %s', (name,)).fetchone() is not None


def create_database(conn, name, like=None):
    """CREATE DATABASE from template0 with the encoding and locale (and locale provider) of ``like`` (a manifest
    'database_info')."""
    query = sql.SQL('CREATE DATABASE {} TEMPLATE template0').format(sql.Identifier(name))
    if like:
        query += sql.SQL(' ENCODING {} LC_COLLATE {} LC_CTYPE {}').format(
            sql.Literal(like['encoding']), sql.Literal(like['collate']), sql.Literal(like['ctype']))
        if like.get('locale_provider') == 'icu':
            query += sql.SQL(' LOCALE_PROVIDER icu ICU_LOCALE {}').format(sql.Literal(like['icu_locale']))
        if like.get('owner'):
            query += sql.SQL(' OWNER {}').format(sql.Identifier(like['owner']))
    conn.execute(query)


def drop_database(conn, name):
    conn.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(name)))


def recreate_database(params, admin, name, like, application_name):
    """Drop ``name`` and create it empty again (a restore that has to start over)."""
    with connect(params, dbname=admin, application_name=application_name) as conn:
        drop_database(conn, name)
        create_database(conn, name, like=like)


LOCALE_PROVIDERS = {'c': 'libc', 'i': 'icu', 'b': 'builtin'}


def database_info(conn, name):
    """Encoding, locale, owner and size of ``name``. The whole row is read as JSON so the columns that differ between
    major versions (datlocprovider since 15, daticulocale renamed datlocale in 17) need no version switch."""
    row = conn.execute(
        "SELECT pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, r.rolname, pg_database_size(d.oid), "
        "to_jsonb(d) FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = %s", (name,)).fetchone()
    if row is None:
        return None
    raw = row[5]
    return dict(encoding=row[0], collate=row[1], ctype=row[2], owner=row[3], size_bytes=int(row[4]),
                locale_provider=LOCALE_PROVIDERS.get(raw.get('datlocprovider'), 'libc'),
                icu_locale=raw.get('daticulocale') or raw.get('datlocale'))


def database_properties(conn, name):
    """What pg_restore without --create leaves out: owner, ACL, connection limit, comment and the
    ``pg_db_role_setting`` rows of ``name`` (its own and per role), as stored in the catalog."""
    row = conn.execute(
        "SELECT r.rolname, d.datconnlimit, d.datacl::text[], shobj_description(d.oid, 'pg_database') "
        "FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = %s", (name,)).fetchone()
    if row is None:
        return None
    acl = None
    if row[2] is not None:
        acl = [dict(grantee=grantee, privilege=privilege, grantable=grantable) for grantee, privilege, grantable in
               conn.execute(
                   "SELECT coalesce(g.rolname, 'PUBLIC'), a.privilege_type, a.is_grantable "
                   "FROM pg_database d, aclexplode(d.datacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee "
                   "WHERE d.datname = %s ORDER BY 1, 2", (name,)).fetchall()]
    settings = [dict(role=role, settings=list(config)) for role, config in conn.execute(
        "SELECT r.rolname, s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
        "LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE d.datname = %s ORDER BY r.rolname NULLS FIRST",
        (name,)).fetchall()]
    return dict(owner=row[0], connection_limit=int(row[1]), acl=acl, comment=row[3], settings=settings)


def split_setting_list(value):
    """Elements of a list setting as pg_db_role_setting stores it ('"$user", public'), read like PostgreSQL's
    SplitGUCList: comma-separated, each a bare word or a double-quoted identifier with "" for a quote."""
    elements, index = [], 0
    while True:
        while index < len(value) and value[index].isspace():
            index += 1
        current = ''
        if value[index:index + 1] == '"':
            index += 1
            while index < len(value):
                if value[index] == '"':
                    if value[index + 1:index + 2] != '"':
                        break
                    index += 1
                current += value[index]
                index += 1
            index += 1
        else:
            while index < len(value) and value[index] != ',' and not value[index].isspace():
                current += value[index]
                index += 1
        elements.append(current)
        while index < len(value) and value[index].isspace():
            index += 1
        if index >= len(value) or value[index] != ',':
            break
        index += 1
    return [element for element in elements if element] if elements != [''] else []


def setting_statement(database, role, setting):
    """ALTER DATABASE/ROLE ... SET for one 'name=value' entry of pg_db_role_setting."""
    name, dummy, value = setting.partition('=')
    if name.lower() in LIST_QUOTE_SETTINGS:
        elements = split_setting_list(value)
        values = sql.SQL(', ').join(sql.Literal(element) for element in elements) if elements else sql.Literal('')
    else:
        values = sql.Literal(value)
    if role is None:
        head = sql.SQL('ALTER DATABASE {}').format(sql.Identifier(database))
    else:
        head = sql.SQL('ALTER ROLE {} IN DATABASE {}').format(sql.Identifier(role), sql.Identifier(database))
    return head + sql.SQL(' SET {} TO ').format(sql.Identifier(name)) + values


DATABASE_PRIVILEGES = ('CONNECT', 'CREATE', 'TEMPORARY')


def role_exists(conn, role):
    return bool(role) and conn.execute('SELECT 1 FROM pg_roles WHERE rolname = %s', (role,)).fetchone() is not None


def apply_database_properties(conn, name, properties):
    """Give the (new, restored) database ``name`` the ``properties`` of database_properties(). Roles this server
    does not have are skipped and returned, so the caller can say so; anything else that fails raises."""
    missing = set()
    ident = sql.Identifier(name)
    owner = properties.get('owner')
    if role_exists(conn, owner):
        conn.execute(sql.SQL('ALTER DATABASE {} OWNER TO {}').format(ident, sql.Identifier(owner)))
    elif owner:
        missing.add(owner)
    conn.execute(sql.SQL('ALTER DATABASE {} CONNECTION LIMIT {}').format(
        ident, sql.Literal(int(properties.get('connection_limit', -1)))))
    conn.execute(sql.SQL('COMMENT ON DATABASE {} IS {}').format(ident, sql.Literal(properties.get('comment'))))
    if properties.get('acl') is not None:
        # Start from nothing, as the catalog's ACL is the whole truth: a privilege not listed is revoked.
        conn.execute(sql.SQL('REVOKE ALL ON DATABASE {} FROM PUBLIC').format(ident))
        current_owner = conn.execute('SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s',
                                     (name,)).fetchone()[0]
        conn.execute(sql.SQL('REVOKE ALL ON DATABASE {} FROM {}').format(ident, sql.Identifier(current_owner)))
        for item in properties['acl']:
            if item['privilege'] not in DATABASE_PRIVILEGES:
                raise ValueError('privilege %r on database %s is not one of %s' % (
                    item['privilege'], name, ', '.join(DATABASE_PRIVILEGES)))
            if item['grantee'] == 'PUBLIC':
                grantee = sql.SQL('PUBLIC')
            elif role_exists(conn, item['grantee']):
                grantee = sql.Identifier(item['grantee'])
            else:
                missing.add(item['grantee'])
                continue
            conn.execute(sql.SQL('GRANT {} ON DATABASE {} TO {}{}').format(
                sql.SQL(item['privilege']), ident, grantee,
                sql.SQL(' WITH GRANT OPTION' if item['grantable'] else '')))
    for entry in properties.get('settings') or []:
        if entry['role'] is not None and not role_exists(conn, entry['role']):
            missing.add(entry['role'])
            continue
        for setting in entry['settings']:
            conn.execute(setting_statement(name, entry['role'], setting))
    return sorted(missing)


def admin_db(params, *avoid):
    """A database to run CREATE/DROP/RENAME from that exists and is not one of those being changed."""
    with connect_server(params, 'stackops-admin', avoid) as conn:
        return conn.info.dbname


# initdb's own objects have OIDs below FirstNormalObjectId; anything a user, an init script or an extension made
# since has one at or above it.
FIRST_NORMAL_OID = 16384
INITDB_COMMENTS = {'postgres': 'default administrative connection database'}
# Per-database catalogs of the objects pg_dump would dump: a row there made after initdb that is neither part of an
# extension nor an inner part of another object (an index, a serial's sequence, a table's row type, a view's rule,
# which go with their owner) is content. Temporary schemas come and go with sessions and are left out.
CONTENT_OBJECTS = ' UNION ALL '.join(
    ["SELECT 'pg_namespace'::regclass AS classid, oid AS objid FROM pg_namespace WHERE oid >= %(first)d "
     "AND nspname !~ '^pg_(toast_)?temp_'",
     "SELECT 'pg_class'::regclass, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
     "WHERE c.oid >= %(first)d AND n.nspname !~ '^pg_(toast_)?temp_'"] +
    ["SELECT '%s'::regclass, oid FROM %s WHERE oid >= %%(first)d" % (catalog, catalog) for catalog in (
        'pg_proc', 'pg_type', 'pg_operator', 'pg_opclass', 'pg_opfamily', 'pg_collation', 'pg_conversion',
        'pg_ts_config', 'pg_ts_dict', 'pg_ts_parser', 'pg_ts_template', 'pg_cast', 'pg_transform', 'pg_am',
        'pg_language', 'pg_foreign_data_wrapper', 'pg_foreign_server', 'pg_user_mapping', 'pg_event_trigger',
        'pg_publication', 'pg_statistic_ext', 'pg_default_acl')] +
    # Large objects are data whatever their OID (lo_create(42) picks its own).
    ["SELECT 'pg_largeobject'::regclass, oid FROM pg_largeobject_metadata"]) % dict(first=FIRST_NORMAL_OID)
CONTENT_QUERY = (
    "SELECT pg_describe_object(o.classid, o.objid, 0) FROM (" + CONTENT_OBJECTS + ") o "
    "WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = o.classid AND d.objid = o.objid "
    "AND d.deptype IN ('e', 'i', 'a')) ORDER BY 1 LIMIT 6")
# An extension's configuration tables (pg_extension_config_dump) hold user rows where its condition says so: what
# pg_dump dumps of them. Any other extension object is the extension's own.
EXTENSION_CONFIG_QUERY = (
    "SELECT e.extname, c.oid::regclass::text, c.relkind, coalesce(e.extcondition[i], '') "
    "FROM pg_extension e CROSS JOIN LATERAL generate_subscripts(e.extconfig, 1) AS i "
    "JOIN pg_class c ON c.oid = e.extconfig[i] ORDER BY 1, 2")


def database_content(conn):
    """Why the database ``conn`` is connected to is not empty, as readable reasons; [] when it is.

    Empty means what a freshly initialised server's image databases are: no object a user, an init script or an
    extension's configuration put there (what pg_dump would dump), no large object, no database setting, ACL or
    comment beyond initdb's, and no other client session. Anything the check cannot read counts as content, so a
    database is only called empty when that is certain.
    """
    try:
        with conn.transaction():
            # Names qualified whatever the database's search_path, and one snapshot for every question.
            conn.execute("SET LOCAL search_path = pg_catalog")
            return content_reasons(conn)
    except Exception as exc:  # pylint: disable=broad-except
        return ['cannot tell whether it is empty (%s)' % str(exc).strip()]


def content_reasons(conn):
    """database_content() in a transaction that reads names qualified."""
    reasons = []
    name = conn.execute('SELECT current_database()').fetchone()[0]
    objects = [row[0] for row in conn.execute(CONTENT_QUERY).fetchall()]
    if objects:
        reasons.append('objects %s%s' % (', '.join(objects[:5]), ', ...' if len(objects) > 5 else ''))
    for extension, table, kind, condition in conn.execute(EXTENSION_CONFIG_QUERY).fetchall():
        if kind == 'S':
            query = sql.SQL('SELECT is_called FROM {}').format(sql.SQL(table))
        else:
            query = sql.SQL('SELECT EXISTS (SELECT 1 FROM {} {})').format(sql.SQL(table), sql.SQL(condition))
        if conn.execute(query).fetchone()[0]:
            reasons.append('rows in %s (configuration of extension %s)' % (table, extension))
    row = conn.execute(
        "SELECT d.datacl IS NOT NULL, shobj_description(d.oid, 'pg_database'), "
        "(SELECT count(*) FROM pg_db_role_setting s WHERE s.setdatabase = d.oid), "
        "(SELECT count(*) FROM pg_stat_activity a WHERE a.datid = d.oid AND a.pid <> pg_backend_pid() "
        " AND a.backend_type = 'client backend') FROM pg_database d WHERE d.oid = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())").fetchone()
    acl, comment, settings, sessions = row
    if acl:
        reasons.append('privileges granted on the database')
    if comment is not None and comment != INITDB_COMMENTS.get(name):
        reasons.append('a comment on the database')
    if settings:
        reasons.append('%d database or role setting rows' % settings)
    if sessions:
        reasons.append('%d other sessions connected' % sessions)
    return reasons
