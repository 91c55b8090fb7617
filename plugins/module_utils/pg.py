# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared PostgreSQL plumbing: connection options, connections, tool invocation.

Every PostgreSQL module takes the same connection options (``pg_connection_spec``)
and opens connections through ``connect``. Command-line tools (pg_dump, pg_restore,
psql) run through ``PgTools``, either on the host or inside the compose service that
runs the server, so client and server versions always match.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import codecs
import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import psycopg
    from psycopg import sql  # noqa: F401 pylint: disable=unused-import  # re-exported for modules that build statements
    HAS_PSYCOPG = True
    PSYCOPG_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the controller environment
    psycopg = None
    sql = None
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = exc

from ansible_collections.stackops.runbooks.plugins.module_utils.compose import (
    ServiceAddressError, compose_argument_spec, compose_command, parse_service_host, service_address)

# SQL_ASCII means "no encoding": the server stores and returns whatever bytes it was given. psycopg then returns
# bytes for every text value and encodes queries as strict ASCII, so names and values outside ASCII break json
# results and sql.Identifier. We read such bytes as UTF-8 with surrogateescape instead: valid UTF-8 becomes the
# text it is, any other byte a lone surrogate that encodes back to exactly that byte, so every name round-trips
# into sql.Identifier, parameters and manifests unchanged.
SQL_ASCII_CODEC = 'stackops_sql_ascii'


def _sql_ascii_encode(text, errors='strict'):
    return codecs.utf_8_encode(text, 'surrogateescape')


def _sql_ascii_decode(data, errors='strict'):
    return codecs.utf_8_decode(data, 'surrogateescape', True)


def _find_sql_ascii_codec(name):
    if name != SQL_ASCII_CODEC:
        return None
    return codecs.CodecInfo(_sql_ascii_encode, _sql_ascii_decode, name=SQL_ASCII_CODEC)


def from_sql_ascii(data):
    """Text of SQL_ASCII bytes (server output, pg_restore listings) the way connections read it."""
    return _sql_ascii_decode(bytes(data))[0]


def to_sql_ascii(text):
    """The exact bytes a text read from a SQL_ASCII database stands for."""
    return _sql_ascii_encode(text)[0]


if HAS_PSYCOPG:
    from psycopg.adapt import Dumper, Loader
    from psycopg.pq import Format

    codecs.register(_find_sql_ascii_codec)
    try:
        # psycopg encodes query text and sql.Identifier with the Python codec it maps the client encoding to
        # ('ascii' for SQL_ASCII); mapping SQL_ASCII to ours makes those encode the same bytes our loaders read.
        from psycopg import _encodings as _psycopg_encodings
        _psycopg_encodings.py_codecs[b'SQL_ASCII'] = SQL_ASCII_CODEC
        _psycopg_encodings.py_codecs[b'SQLASCII'] = SQL_ASCII_CODEC
        _psycopg_encodings.pg2pyenc.cache_clear()
    except (ImportError, AttributeError):  # pragma: no cover - another psycopg layout: values still load as text
        pass

    class SqlAsciiTextLoader(Loader):
        def load(self, data):
            return from_sql_ascii(data)

    class SqlAsciiTextBinaryLoader(SqlAsciiTextLoader):
        format = Format.BINARY

    class SqlAsciiStrDumper(Dumper):
        """Text parameters with the unknown oid, as psycopg sends str by default: the server infers the type."""

        def dump(self, obj):
            return to_sql_ascii(obj)

    class SqlAsciiStrBinaryDumper(SqlAsciiStrDumper):
        format = Format.BINARY
        oid = 25  # text

    TEXT_TYPES = (0, 'text', 'varchar', 'bpchar', 'name', '"char"')


def json_safe(value):
    """``value`` with every string valid UTF-8, so Ansible accepts it as a result.

    Text read from a SQL_ASCII database may hold bytes that are not UTF-8 (lone surrogates, see from_sql_ascii);
    those are shown as ``\\xNN`` escapes. Bytes are read the same way. Valid text is returned as it is.
    """
    if isinstance(value, (bytes, bytearray)):
        value = from_sql_ascii(value)
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode('utf-8')
            return value
        except UnicodeEncodeError:
            return to_sql_ascii(value).decode('utf-8', 'backslashreplace')
    if isinstance(value, dict):
        return dict((json_safe(key), json_safe(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def json_safe_results(module):
    """Pass everything ``module`` returns (exit_json, fail_json) through json_safe, once for every result key."""
    exit_json, fail_json = module.exit_json, module.fail_json

    def safe_exit_json(**kwargs):
        exit_json(**json_safe(kwargs))

    def safe_fail_json(msg, **kwargs):
        fail_json(**json_safe(dict(kwargs, msg=msg)))

    module.exit_json, module.fail_json = safe_exit_json, safe_fail_json


def use_sql_ascii_text(conn):
    """Make ``conn`` read and write text as from_sql_ascii/to_sql_ascii do, when it talks SQL_ASCII."""
    if conn.pgconn.parameter_status(b'client_encoding') not in (b'SQL_ASCII', b'SQLASCII'):
        return conn
    adapters = conn.adapters
    for name in TEXT_TYPES:
        adapters.register_loader(name, SqlAsciiTextLoader)
        if name:
            adapters.register_loader(name, SqlAsciiTextBinaryLoader)
    adapters.register_dumper(str, SqlAsciiStrBinaryDumper)
    adapters.register_dumper(str, SqlAsciiStrDumper)
    return conn


def pg_connection_spec():
    """Argument spec fragment shared by every PostgreSQL module."""
    spec = dict(
        login_host=dict(type='str', default='127.0.0.1'),
        login_port=dict(type='int', default=5432),
        login_user=dict(type='str', default='postgres'),
        login_password=dict(type='str', no_log=True),
        login_password_file=dict(type='path', no_log=False),
        login_db=dict(type='str', default='postgres'),
        connect_timeout=dict(type='int', default=10),
    )
    return spec


def pg_tools_spec():
    """Argument spec fragment for modules that run pg_dump/pg_restore/psql."""
    spec = dict(
        tools_location=dict(type='str', choices=['host', 'compose'], default='host'),
        tools_bindir=dict(type='path'),
        # No default: a service name is the stack's, never ours (docs/inventory.md, stackops_db_service).
        compose_service=dict(type='str'),
    )
    spec.update(compose_argument_spec())
    return spec


def require_psycopg(module):
    if not HAS_PSYCOPG:
        module.fail_json(msg=missing_required_lib('psycopg (psycopg 3)'), exception=str(PSYCOPG_IMPORT_ERROR))


def resolve_password(module):
    """Read login_password_file into login_password once, so the secret never travels as a task var."""
    params = module.params
    path = params.get('login_password_file')
    if params.get('login_password') or not path:
        return
    try:
        with open(path) as handle:
            password = handle.read().strip()
    except (IOError, OSError) as exc:
        module.fail_json(msg='cannot read login_password_file %s: %s; check the path and its permissions' % (path, exc))
    module.no_log_values.add(password)
    params['login_password'] = password


def prepare(module):
    """Common start of every PostgreSQL module: psycopg present, password resolved, results JSON-safe."""
    if isinstance(module, AnsibleModule):
        json_safe_results(module)
    require_psycopg(module)
    resolve_password(module)


# Addresses of unpublished database services looked up in this process: {(project, service): address}.
_SERVICE_ADDRESSES = {}


def login_host(params, fresh=False):
    """The host to connect to: login_host itself, or for ``compose:<project>/<service>`` (a database that publishes
    no port, docs/inventory.md) its container's address on the compose network (compose.service_address). The
    address is remembered for the module run; ``fresh`` looks it up again (the container may have been recreated)."""
    host = params['login_host']
    try:
        service = parse_service_host(host)
        if service is None:
            return host
        if fresh or service not in _SERVICE_ADDRESSES:
            _SERVICE_ADDRESSES[service] = service_address(*service)
        return _SERVICE_ADDRESSES[service]
    except ServiceAddressError as exc:
        # An OperationalError like any unreachable server, so every caller's handling of those applies.
        raise psycopg.OperationalError('cannot reach the database at login_host %s: %s' % (host, exc))


def connect(params, dbname=None, autocommit=True, application_name='stackops', options=None):
    """Open a psycopg connection from module params; ``dbname`` overrides login_db, ``options`` sets GUCs
    (``-c name=value ...``) for the session. Text from a SQL_ASCII database is read as str (see use_sql_ascii_text),
    never bytes, so every module result stays JSON and every name can be quoted with sql.Identifier."""
    extra = dict(options=options) if options else {}

    def attempt(host):
        return psycopg.connect(
            host=host,
            port=params['login_port'],
            user=params['login_user'],
            password=params.get('login_password'),
            dbname=dbname or params['login_db'],
            connect_timeout=params['connect_timeout'],
            application_name=application_name,
            autocommit=autocommit,
            **extra
        )
    host = login_host(params)
    try:
        conn = attempt(host)
    except psycopg.OperationalError:
        # A remembered container address goes stale when the container is recreated: look it up once more.
        if host == params['login_host'] or login_host(params, fresh=True) == host:
            raise
        conn = attempt(login_host(params))
    return use_sql_ascii_text(conn)


def connect_server(params, application_name='stackops', avoid=()):
    """A connection for server-wide work (pg_database, pg_roles, CREATE/DROP DATABASE) that works whichever databases
    exist: login_db is often the app database, which a fresh server, or one that lost its databases, does not have
    yet. ``avoid``: databases it must not be in (those about to be dropped or renamed)."""
    tried = []
    for name in dict.fromkeys((params['login_db'], 'postgres', 'template1')):
        if name in avoid:
            continue
        try:
            return connect(params, dbname=name, application_name=application_name)
        except psycopg.OperationalError as exc:
            # Only a missing database is worth another try; a wrong password or a dead server fails the same way.
            if getattr(exc, 'sqlstate', None) != '3D000' and 'does not exist' not in str(exc):
                raise
            tried.append(exc)
    raise tried[-1]


def conninfo_dbname(name):
    """``-d`` value that libpq never re-parses: a name containing '=' would otherwise be read as a conninfo string."""
    return "dbname='%s'" % name.replace('\\', '\\\\').replace("'", "\\'")


def describe_target(params, dbname=None):
    """Human-readable 'where' for error messages; never includes the password."""
    return 'postgresql://%s@%s:%s/%s' % (
        params['login_user'], params['login_host'], params['login_port'], dbname or params['login_db'])


class PgTools(object):
    """Builds argv for PostgreSQL client tools on the host or in a compose service.

    Passwords travel in the PGPASSWORD environment variable, never in argv, so they
    do not show up in process listings or in the module's returned command lines.
    """

    def __init__(self, module, params=None):
        self.module = module
        self.params = params or module.params
        # More environment for the tools (e.g. PGOPTIONS), passed like PGPASSWORD: by name into a container.
        self.extra_env = {}
        if self.in_container and not self.params.get('compose_service'):
            module.fail_json(msg='tools_location=compose runs the PostgreSQL client tools inside the database service, '
                                 'but no service is named: set compose_service (the inventory variable '
                                 'stackops_db_service), or tools_location=host. Nothing was done')

    @property
    def in_container(self):
        return self.params.get('tools_location') == 'compose'

    def environ(self):
        env = dict(self.extra_env)
        if self.params.get('login_password'):
            env['PGPASSWORD'] = self.params['login_password']
        return env

    def connection_args(self, dbname=None):
        """-h/-p/-U/-d for the tool. Inside the container it talks to the local server."""
        if self.in_container:
            host, port = '127.0.0.1', 5432
        else:
            host, port = login_host(self.params), self.params['login_port']
        args = ['-h', str(host), '-p', str(port), '-U', self.params['login_user']]
        if dbname:
            args += ['-d', dbname]
        return args

    def tool_path(self, tool):
        if self.in_container:
            return tool
        bindir = self.params.get('tools_bindir')
        if bindir:
            return os.path.join(bindir, tool)
        found = self.module.get_bin_path(tool)
        if found:
            return found
        for candidate in ('/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/17/bin'):
            path = os.path.join(candidate, tool)
            if os.path.exists(path):
                return path
        self.module.fail_json(msg='%s not found on the host; install the PostgreSQL client tools or set '
                                  'tools_location=compose to run it inside the database container' % tool)
        return None

    def argv(self, tool, args, interactive_stdin=False):
        """Full argv; in compose mode wrapped in ``docker compose exec -T`` with PGPASSWORD passed by name."""
        command = [self.tool_path(tool)] + list(args)
        if not self.in_container:
            return command
        exec_args = ['exec', '-T']
        if self.params.get('login_password'):
            # "-e NAME" without a value copies it from our environment: the value never enters argv.
            exec_args += ['-e', 'PGPASSWORD']
        for name in sorted(self.extra_env):
            exec_args += ['-e', name]
        return compose_command(self.module, self.params, exec_args + [self.params['compose_service']] + command)

    def run_env(self):
        env = dict(os.environ)
        env.update(self.environ())
        return env
