"""PostgreSQL (psycopg 3): COPY each batch into a temporary table, then MERGE it and the state in one transaction."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlglot import exp

from engine import sql
from engine.destinations import (
    DestinationConfig, batch_scale_option, check_options, destination, import_driver, option_where, prefix_where, schema_option,
)
from engine.destinations.warehouse import PENDING_SUFFIX, SHADOW_SUFFIX, STAGING_TABLE, SqlDestination
from engine.errors import ConfigError, LockedError, WarehouseError
from engine.schema import Column, ColumnType, TableSpec

if TYPE_CHECKING:
    import psycopg

    from engine.destinations.table_load import SqlLoad

log = logging.getLogger("klx.postgres")
DIALECT = "postgres"
# Names as klx stored them before it folded them to lower case as PostgreSQL folds unquoted names: as written.
_AS_WRITTEN = dataclasses.replace(sql.rules(DIALECT), fold=None)
OPTIONS = ("dsn", "host", "port", "user", "password", "database", "schema", "sslmode", "connect_timeout", "lock_timeout", "batch_scale")
# libpq's sslmode values: another one is refused at connect time, as a warehouse error without the config's line.
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# Where to connect, said one way: a dsn, or these parts (libpq would quietly let a part override the dsn's).
_DSN_PARTS = ("host", "port", "user", "password", "database")
# COPY's CSV is what Arrow's CSV writer writes: UTF-8 whatever the connection's encoding, no header.
_CSV = [
    exp.CopyParameter(this=exp.var("FORMAT"), expression=exp.var("CSV")),
    exp.CopyParameter(this=exp.var("ENCODING"), expression=exp.Literal.string("UTF8")),
]
_WRITE_OPTIONS = pa_csv.WriteOptions(include_header=False)
_MERGE_SINCE = 150000  # MERGE exists from PostgreSQL 15; older servers upsert by DELETE + INSERT
_LOCK_CLASS = 0x6B6C78  # "klx": the first key of klx's advisory locks, the second is hashtext(schema.prefix)
# Seconds a statement waits for a lock another session holds (a BI query or an open transaction on a table a full
# refresh swaps or a batch alters), unless the config or the role's settings say otherwise. PostgreSQL's own
# default waits forever, and every query on that table queues behind the waiting statement meanwhile.
LOCK_TIMEOUT = 60
# Seconds to connect when neither the config, the dsn nor PGCONNECT_TIMEOUT says: libpq's own default waits for
# ever on a server that accepts the connection and never answers (hung, or behind a proxy that lost it).
CONNECT_TIMEOUT = 15
# TCP keepalive probes on klx's connection, each unless the dsn sets it (libpq reads no variable for them): a server
# gone from a network that drops packets without a reset (a failed-over VM, a NAT that forgot the flow) is found
# within about a minute and a half (idle 60 s, then 3 unanswered probes 10 s apart), not the operating system's two
# hours. A busy server's kernel answers probes while its statement runs, so a long MERGE is never cut by them.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 60, "keepalives_interval": 10, "keepalives_count": 3}


# The privileges granted on one table, a row each: grantee (None: PUBLIC), privilege, grantable; not those of the
# role klx runs as, which owns the tables it creates. Parameters: schema, table.
_GRANTS = (
    "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END, a.privilege_type, a.is_grantable "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN LATERAL aclexplode(c.relacl) a "
    "WHERE n.nspname = %s AND c.relname = %s AND a.grantee <> (SELECT oid FROM pg_roles WHERE rolname = current_user) "
    "ORDER BY 1 NULLS FIRST, 3, 2"
)
# The other sessions holding a lock on one table, oldest transaction first: pid, user, application, client, state and
# since when. Parameters: schema, table.
_HOLDERS = (
    "SELECT a.pid, a.usename, a.application_name, host(a.client_addr), a.state, "
    "to_char(min(coalesce(a.xact_start, a.query_start)) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') "
    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid JOIN pg_class c ON c.oid = l.relation "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE l.granted AND l.pid <> pg_backend_pid() AND n.nspname = %s AND c.relname = %s "
    "GROUP BY 1, 2, 3, 4, 5 ORDER BY 6 NULLS LAST LIMIT 3"
)

# Of some tables of one schema, those that exist though information_schema does not list them: the role holds no
# privilege on them. Parameters: schema, the table names (an array).
_HIDDEN = (
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY 1"
)


class _LockWait(WarehouseError):
    """A statement on `table` gave up waiting for a lock (lock_timeout); explained once the session can ask who holds it."""

    def __init__(self, message: str, *, kind: str, table: str) -> None:
        super().__init__(message)
        self.kind, self.table = kind, table


@destination("postgres")
class PostgresDestination(SqlDestination):
    """A PostgreSQL database; tables live in `schema` (created if missing), state in <prefix>klx_state.

    The schema, the table prefix and every other name are stored in lower case, as PostgreSQL folds unquoted
    names and RudderStack stored them: `schema: Klaviyo` loads klaviyo, where `select * from Klaviyo.x` reads.
    """

    dialect = DIALECT
    # Matching a batch reads every row of the table (no index on the key), and PostgreSQL reads its rows whole
    # where DuckDB reads one column. Two loads of the same 10 batches of 5,000 events, the second into the
    # first's 50,000 rows: 41.5 µs a row matching each batch, 30.7-34.2 gathering; of 4 batches (20,000 rows),
    # 30.1 against 33.8 (bench/README.md, Session 11).
    gather_from = 25_000
    too_long = {"sqlstate": "22001"}  # string_data_right_truncation: "value too long for type character varying(n)"
    _hidden: frozenset[str] = frozenset()  # prepare(): tables that exist, which klx's role may not use
    _cancelled = False  # cancel(): the run is stopping, and sends nothing more

    def __init__(
        self,
        *,
        connection: dict[str, Any],
        dsn: str | None,
        schema: str,
        table_prefix: str = "",
        batch_scale: int = 1,
        lock_timeout: int | None = None,
        create: bool = True,
        where: dict[str, str] | None = None,
    ) -> None:
        """Connect; `where` holds the file:line of the config's schema and table_prefix keys, for their errors.

        `lock_timeout`: seconds a statement waits for a lock (0: no limit); None keeps the role's or database's
        lock_timeout, or sets LOCK_TIMEOUT where they have none.
        """
        import psycopg  # only a PostgreSQL run pays for the driver

        self._psycopg = psycopg
        self.driver_errors = (psycopg.Error,)
        self.schema = self.name(schema)
        self.table_prefix = sql.rules(DIALECT).folded(table_prefix)  # (the lock's key: KL_ and kl_ name the same tables)
        self.batch_scale = batch_scale  # more than 1 for a server far away: fewer, larger transactions
        server = _describe(connection, dsn)
        try:
            given = psycopg.conninfo.conninfo_to_dict(dsn or "", **connection)
            if "connect_timeout" not in given and not os.environ.get("PGCONNECT_TIMEOUT"):
                connection = {**connection, "connect_timeout": CONNECT_TIMEOUT}
            connection = {**connection, **{key: value for key, value in KEEPALIVES.items() if key not in given}}
            # Sessions in UTC: TIMESTAMPTZ values cast into an adopted TIMESTAMP column keep their UTC wall time. Added
            # to the options the dsn or PGOPTIONS give (say -c statement_timeout=0), which an options= of klx's own replaced.
            options = " ".join(part for part in (given.get("options") or os.environ.get("PGOPTIONS"), "-c TimeZone=UTC") if part)
            # Named klx in pg_stat_activity (unless the dsn or PGAPPNAME names it), for the DBA looking for its sessions.
            self._con = psycopg.connect(dsn or "", autocommit=True, options=options, fallback_application_name="klx", **connection)
        except psycopg.Error as err:
            raise WarehouseError(
                f"cannot connect to PostgreSQL {server}: {str(err).strip().splitlines()[0]}",
                hint="check destination.host, port, user, password and database (or dsn), and that the server accepts connections",
            ) from err
        self.upsert_form = "merge" if self._con.info.server_version >= _MERGE_SINCE else "delete_insert"
        self.lock_timeout_ms = self._limit_lock_waits(lock_timeout)
        where = where or {}
        self.schema = self._resolve_schema(schema, where.get("schema"))
        self._refuse_tables_named_as_written(table_prefix, where.get("table_prefix"))
        if create:
            self.ensure_schema()

    @classmethod
    def from_config(cls, config: DestinationConfig, *, create: bool = True) -> PostgresDestination:
        """Validate the connection keys (`dsn`, or host/port/user/password/database) and `schema`, then connect."""
        import_driver(config, "psycopg", "postgres")
        check_options(config, allowed=OPTIONS)
        batch_scale = batch_scale_option(config, cls.batch_scale)
        options = {key: value for key, value in config.options.items() if key != "batch_scale"}
        for key, value in options.items():
            wanted = int if key in ("port", "connect_timeout", "lock_timeout") else str
            if not isinstance(_reveal(value), wanted):
                raise ConfigError(f"destination.{key}: must be {'a number' if wanted is int else 'a string'}", where=option_where(config, key))
        port = options.get("port")
        if port is not None and (isinstance(port, bool) or not 1 <= port <= 65535):
            raise ConfigError(f"destination.port: {port!r} is not a port number from 1 to 65535", where=option_where(config, "port"))
        lock_timeout = options.pop("lock_timeout", None)
        if lock_timeout is not None and (isinstance(lock_timeout, bool) or lock_timeout < 0):
            raise ConfigError(
                f"destination.lock_timeout: {lock_timeout!r} is not a number of seconds (0: wait without limit)",
                where=option_where(config, "lock_timeout"),
            )
        if options.get("sslmode", "prefer") not in _SSLMODES:
            raise ConfigError(
                f"destination.sslmode: {options['sslmode']!r} is not one of {', '.join(_SSLMODES)}", where=option_where(config, "sslmode")
            )
        beside_dsn = [key for key in options if key in _DSN_PARTS] if "dsn" in options else []
        if beside_dsn:
            raise ConfigError(
                f"destination.{beside_dsn[0]}: given with destination.dsn; say where to connect one way, "
                "a dsn or host, port, user, password and database",
                where=option_where(config, beside_dsn[0]),
            )
        if "dsn" not in options and "database" not in options:
            raise ConfigError("destination.database: required for 'postgres' (or give a dsn)", where=config.where)
        connection = {
            {"database": "dbname"}.get(key, key): _reveal(value) for key, value in options.items() if key not in ("dsn", "schema")
        }
        dsn = _reveal(options["dsn"]) if "dsn" in options else None
        schema = schema_option(config, "public")
        where = {"schema": option_where(config, "schema"), "table_prefix": prefix_where(config)}
        return cls(
            connection=connection, dsn=dsn, schema=schema, table_prefix=config.table_prefix, batch_scale=batch_scale,
            lock_timeout=lock_timeout, create=create, where=where,
        )

    def _resolve_schema(self, given: str, where: str | None) -> str:
        """The schema `given` names: folded to lower case, unless only a schema named as written exists.

        An earlier klx kept the name as written, quoted: `schema: Klaviyo` made "Klaviyo". That schema goes on being
        loaded (with a warning) while no klaviyo exists; with both, which one is meant is unknown.
        """
        folded, written = self.name(given), _AS_WRITTEN.identifier(given)
        if folded == written:
            return folded
        exists = {name for name in (folded, written) if self.execute("READ SCHEMAS", name, sql.schema_exists(DIALECT), (name,))}
        if exists == {folded, written}:
            raise WarehouseError(
                f'destination.schema: {given!r} names two schemas: {folded}, as PostgreSQL folds the unquoted name, and "{written}", '
                "as written (what an earlier klx loaded)",
                where=where,
                hint=f'write schema: {folded} to load {folded}; to load "{written}", rename the other first '
                f'(ALTER SCHEMA {folded} RENAME TO {folded}_old)',
            )
        if exists == {written}:
            log.warning(
                '%sdestination.schema: %r: loading schema "%s", named as written (by an earlier klx); PostgreSQL folds the '
                "unquoted name to %s, so queries must quote it: ALTER SCHEMA \"%s\" RENAME TO %s lets them not",
                f"{where}: " if where else "", given, written, folded, written, folded,
            )
            return written
        return folded

    def _refuse_tables_named_as_written(self, prefix: str, where: str | None) -> None:
        """Refuse a table prefix with upper case whose tables an earlier klx made as written ("KL_klx_state"):
        klx now names them in lower case, and would start every stream anew beside them."""
        folded, written = sql.state_table(prefix, DIALECT), _AS_WRITTEN.identifier(prefix + sql.STATE_TABLE)
        if folded == written:
            return
        found = self.columns_of_tables([written, folded])
        if written in found and folded not in found:
            raise WarehouseError(
                f"destination.table_prefix: {prefix!r}: schema {self.schema} holds the tables an earlier klx made with "
                f'the prefix as written ("{written}", …); klx now names them in lower case, as PostgreSQL folds unquoted names '
                f"({folded}, …), and would sync every stream anew beside them",
                where=where,
                hint=f'rename each of them to its lower-case name, e.g. ALTER TABLE "{self.schema}"."{written}" RENAME TO {folded} '
                '(docs/migrating-from-rudderstack.md, "Upper case in schema or table_prefix", writes them all), then run again',
            )

    def _limit_lock_waits(self, seconds: int | None) -> int:
        """Set the session's lock_timeout (see __init__); the milliseconds it is now (0: no limit)."""
        try:
            if seconds is None:
                [(current,)] = self.run_sql("SELECT setting::int FROM pg_settings WHERE name = 'lock_timeout'", [])
                if current:  # a DBA's ALTER ROLE ... SET lock_timeout stands
                    return current
                seconds = LOCK_TIMEOUT
            self.run_sql("SELECT set_config('lock_timeout', %s, false)", [f"{seconds}s"])
        except self._psycopg.Error as err:
            raise WarehouseError(f"cannot set lock_timeout on the PostgreSQL session: {str(err).strip().splitlines()[0]}") from err
        return seconds * 1000

    def execute(self, kind: str, table: str, statement: exp.Expr, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """SqlDestination.execute; a statement that gave up waiting for a lock says which sessions hold one, and one
        that the session's statement_timeout cut says how to give klx's sessions their own."""
        if self._cancelled:
            raise WarehouseError(f"{kind} on table {self.schema}.{table} was not sent: the run is stopping")
        try:
            return super().execute(kind, table, statement, params)
        except WarehouseError as err:
            cause = err.__cause__
            if isinstance(cause, self._psycopg.errors.QueryCanceled) and "statement timeout" in str(cause):
                try:  # (not within the transaction the error aborted: PostgreSQL answers nothing there)
                    [(limit,)] = self.run_sql("SELECT current_setting('statement_timeout')", []) if self._con.info.transaction_status == (
                        self._psycopg.pq.TransactionStatus.IDLE) else [("set",)]
                except self._psycopg.Error:
                    limit = "set"
                raise WarehouseError(
                    err.message,
                    hint=f"the session's statement_timeout ({limit}, the role's or the database's) ended it; give klx's sessions "
                    "their own, in the dsn (options=-c statement_timeout=0) or with ALTER ROLE <klx's role> SET statement_timeout = 0",
                ) from cause
            if not isinstance(cause, self._psycopg.errors.LockNotAvailable):
                raise
            waited = _LockWait(err.message, kind=kind, table=table)
            raise self._explained(waited) from cause

    def _explained(self, err: _LockWait) -> WarehouseError:
        """`err` with a hint naming the sessions holding a lock on its table, once this session can ask (a failed
        transaction cannot: transaction() asks after its rollback); else `err` as it is."""
        if self._con.closed or self._con.info.transaction_status not in (
            self._psycopg.pq.TransactionStatus.IDLE, self._psycopg.pq.TransactionStatus.INTRANS
        ):
            return err
        try:
            holders = self.run_sql(_HOLDERS, [self.schema, err.table])
        except self._psycopg.Error:
            holders = []
        sessions = [
            f"session {pid} ({', '.join(part for part in (user and f'user {user}', application, address or 'local socket', state) if part)}"
            f"{f', since {since} UTC' if since else ''})"
            for pid, user, application, address, state, since in holders
        ]
        held = f"held by {' and '.join(sessions)}" if sessions else "whose holder has ended since"
        return WarehouseError(
            f"{err.kind} on table {self.schema}.{err.table} gave up after waiting {self.lock_timeout_ms / 1000:g} s "
            f"(lock_timeout) for a lock on the table {held}",
            hint="a long query or an open transaction (idle in transaction) blocks the statement; wait for it to end or end it, "
            "or raise destination.lock_timeout, then sync again",
        )

    @property
    def connection(self) -> psycopg.Connection:
        """The open connection, for reading loaded tables (tests)."""
        return self._con

    def run_sql(self, text: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Execute one statement and fetch its rows."""
        cursor = self._con.execute(text, list(params) or None)
        return cursor.fetchall() if cursor.description else []

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN … COMMIT; ROLLBACK on any exception (DDL included: PostgreSQL's DDL is transactional)."""
        try:
            with self._con.transaction():
                yield
        except _LockWait as err:  # rolled back: the session may now ask who holds the lock
            raise self._explained(err) from err.__cause__

    def rollback(self) -> None:
        """Nothing to do: psycopg's transaction block has rolled back on the way out."""

    @contextlib.contextmanager
    def staged(self, batch: pa.Table, columns: Sequence[Column], name: str = STAGING_TABLE) -> Iterator[str]:
        """`batch` COPYed into a temporary table of the session, as CSV that Arrow writes; dropped afterwards.

        Arrow writes the whole batch's text in C++ (an unquoted empty field is NULL, a quoted one an empty string;
        timestamps in UTC with a Z; doubles in their shortest exact digits). Converting each value to a Python
        object for psycopg's write_row took 22 of klx's 25 CPU µs a row loading events (bench/README.md).
        """
        declared = {c.name: c for c in columns}
        staged = [declared.get(n, Column(name=n, type=ColumnType.BIGINT)) for n in batch.column_names]
        self.execute("DROP TABLE", name, sql.drop_table(name))
        self.execute("CREATE TABLE", name, sql.create_temporary_table(name, staged, DIALECT))
        names = [sql.ident(c.name) for c in staged]
        copy = exp.Copy(this=exp.Schema(this=sql.table(name), expressions=names), kind=True, files=[exp.var("STDIN")], params=_CSV)
        text = io.BytesIO()
        pa_csv.write_csv(batch, text, _WRITE_OPTIONS)
        try:
            with self._con.cursor() as cursor, cursor.copy(sql.render(copy, DIALECT)) as writer:
                writer.write(text.getvalue())  # a copy: no view of the buffer outlives it (close() below)
        except self._psycopg.Error as err:
            raise WarehouseError(f"COPY into the staging table of {self.schema} failed: {str(err).strip().splitlines()[0]}") from err
        finally:
            text.close()
        try:
            yield name
        finally:
            if not self._con.closed and self._con.info.transaction_status == self._psycopg.pq.TransactionStatus.IDLE:
                self.execute("DROP TABLE", name, sql.drop_table(name))

    def grants_for(self, table: str, shadow: str) -> list[exp.Expr]:
        """What roles other than klx's were granted on `table` (pg_class.relacl), granted on `shadow`: a full refresh
        drops the table and renames its shadow, whose grants are only its owner's, so a BI or dbt role's SELECT on
        an adopted RudderStack table went with the first full refresh."""
        try:
            rows = self.run_sql(_GRANTS, [self.schema, table])
        except self._psycopg.Error as err:
            raise WarehouseError(f"READ GRANTS on table {self.schema}.{table} failed: {str(err).strip().splitlines()[0]}") from err
        granted: dict[tuple[str | None, bool], list[str]] = {}
        for grantee, privilege, grantable in rows:
            granted.setdefault((grantee, grantable), []).append(privilege)
        return [sql.grant(privileges, shadow, grantee, grant_option=grantable, schema=self.schema)
                for (grantee, grantable), privileges in granted.items()]

    def prepare(self, tables: Sequence[str], counted: Sequence[str] = ()) -> None:
        """SqlDestination.prepare; and which of those tables exist though klx's role holds no privilege on them.

        information_schema lists only the tables a role may use: klx took such a table for missing, read its stream
        from start_date, then failed to CREATE it ("relation already exists"). begin() refuses them instead.
        """
        super().prepare(tables, counted)
        missing = [name for name, columns in (self._prefetched or {}).items() if not columns]
        try:
            self._hidden = frozenset(name for (name,) in self.run_sql(_HIDDEN, [self.schema, missing])) if missing else frozenset()
        except self._psycopg.Error as err:
            raise WarehouseError(f"READ TABLES of schema {self.schema} failed: {str(err).strip().splitlines()[0]}") from err

    def has_table(self, table: str) -> bool:
        """SqlDestination.has_table; a table the role may not use exists too (begin() refuses it, saying so)."""
        return self.name(table) in self._hidden or super().has_table(table)

    def begin(self, stream: str, table: TableSpec, *, replace: bool) -> SqlLoad:
        """SqlDestination.begin, once the tables this load reads and writes are ones klx's role may use (prepare)."""
        names = [sql.state_table(self.table_prefix, DIALECT), *(self.name(table.name + suffix) for suffix in ("", SHADOW_SUFFIX, PENDING_SUFFIX))]
        hidden = [name for name in names if name in self._hidden]
        if hidden:
            [(role,)] = self.run_sql("SELECT current_user", [])
            one = len(hidden) == 1
            listed = ", ".join(f"{self.schema}.{name}" for name in hidden)
            quoted = ", ".join(sql.render(sql.table(name, self.schema), DIALECT) for name in hidden)
            raise WarehouseError(
                f"role {role} holds no privilege on {'table' if one else 'tables'} {listed}, which {'exists' if one else 'exist'}: "
                f"klx can neither read nor load {'it' if one else 'them'}; nothing was read or written",
                hint=f'GRANT SELECT, INSERT, UPDATE, DELETE ON {quoted} TO "{role}" (a full refresh replaces the table: '
                "the role must own it), or load another schema or table_prefix",
            )
        return super().begin(stream, table, replace=replace)

    def cancel(self) -> None:
        """base.Destination.cancel: PostgreSQL's cancel request (psycopg's, safe from another thread). The statement
        running fails with "canceling statement due to user request" and its transaction rolls back; with none
        running, the server ignores it."""
        self._cancelled = True  # and no statement after it: one about to start would not be cancelled
        with contextlib.suppress(self._psycopg.Error):
            self._con.cancel()

    def claim(self) -> None:
        """Hold this schema and table prefix for the run: a session advisory lock, released when the connection
        closes or its process dies. Two runs of different config files (two machines, two Airflow workers) into
        one schema and prefix would each load the same tables, and their full refreshes share one shadow table:
        the second one is refused here, before it reads or writes anything."""
        key = f"{self.schema}.{self.table_prefix}"
        [(taken,)] = self.run_sql("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [_LOCK_CLASS, key])
        if taken:
            return
        holders = self.run_sql(
            "SELECT a.pid, host(a.client_addr), a.application_name, to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = hashtext(%s)::oid",
            [_LOCK_CLASS, key],
        )
        holder = "another session"
        if holders:
            pid, address, application, since = holders[0]
            holder = f"PostgreSQL session {pid} ({address or 'local socket'}{', ' + application if application else ''}, since {since} UTC)"
        raise LockedError(
            f"schema {self.schema} with table prefix {self.table_prefix!r} is being loaded by another klx run: {holder}",
            hint="one run at a time per schema and prefix; wait for it to finish, or give this config another table_prefix",
        )

    def close(self) -> None:
        """Release the connection."""
        self._con.close()


def _reveal(value: Any) -> Any:
    """A Secret's value (config wraps passwords and DSNs), anything else as it is."""
    return value.reveal() if hasattr(value, "reveal") else value


def _describe(connection: dict[str, Any], dsn: str | None) -> str:
    """host:port/database for messages; never the password or the DSN (it may hold one)."""
    if dsn is not None:
        return "(destination.dsn)"
    host, port = connection.get("host", "localhost"), connection.get("port", 5432)
    return f"at {host}:{port}/{connection.get('dbname', '')}"
