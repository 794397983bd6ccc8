"""Snowflake (snowflake-connector-python): batches PUT as Parquet into a temporary stage and COPY INTO a staging
table, then the data MERGE and the state MERGE in one transaction; DDL always runs before it, since it commits."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import pyarrow as pa
import sqlglot
from sqlglot import exp

from engine import sql
from engine.destinations import (
    DestinationConfig, batch_scale_option, check_options, config_relative, destination, import_driver, option_where, schema_option,
)
from engine.destinations.warehouse import STAGING_TABLE, SqlDestination, _first_line
from engine.errors import ConfigError, LockedError, WarehouseError
from engine.schema import Column, ColumnType

if TYPE_CHECKING:
    import snowflake.connector

log = logging.getLogger("klx.snowflake")
DIALECT = "snowflake"
OPTIONS = (
    "account", "user", "password", "private_key_path", "private_key_passphrase",
    "warehouse", "database", "schema", "role", "batch_scale",
)
STAGE = "klx_stage"  # a temporary stage: it lives as long as the session, nothing to clean up
# A run's claim on its schema and prefix (claim()) is a row in <PREFIX>KLX_LOCK that lapses CLAIM_SECONDS after it
# was last renewed, so a run killed mid-way holds the next one off no longer than that (a CRON schedule runs at most
# every 15 minutes). A run renews it before the first statement it sends RENEW_SECONDS or more after the last renewal.
CLAIM_SECONDS = 600
RENEW_SECONDS = 180
LOCK_TABLE = "klx_lock"


@destination("snowflake")
class SnowflakeDestination(SqlDestination):
    """A Snowflake database; tables live in `schema` (created if missing), state in <PREFIX>KLX_STATE."""

    dialect = DIALECT
    # A batch costs five or six round trips (CREATE OR REPLACE of the staging table, PUT, COPY, INSERT or MERGE,
    # the state's MERGE in an incremental load, COMMIT) of a tenth of a second to a second each: batches of
    # api.batch_rows rows would keep a sync waiting on them far longer than on the API. Eight times the rows and
    # bytes make eight times fewer round trips (bench/README.md, Sessions 11 and 12).
    batch_scale = 8
    too_long = {"errno": 100078}  # "100078 (22000): String '…' is too long and would be truncated"
    # "003001 (42501): SQL access control error: Insufficient privileges to operate on table 'KL_RUDDER_X'": ALTER
    # TABLE (a new column, a widening, SWAP WITH) needs OWNERSHIP, which RudderStack's role holds on the tables it made.
    NOT_OWNER = 3001
    _ALTERS = ("ADD COLUMN", "WIDEN COLUMN", "SWAP IN")

    def __init__(
        self, *, connection: dict[str, Any], schema: str, table_prefix: str = "", batch_scale: int | None = None, create: bool = True
    ) -> None:
        import snowflake.connector  # only a Snowflake run pays for the driver

        self._driver = snowflake.connector
        self.driver_errors = (snowflake.connector.Error,)
        self.schema = self.name(schema)
        self.staging_schema = self.schema
        self.table_prefix = table_prefix
        self.batch_scale = batch_scale or type(self).batch_scale
        self._role = connection.get("role")
        self._claim: str | None = None  # the token of this run's row in the lock table, once claim() took it
        self._renewed = 0.0  # time.monotonic() when the claim was last taken or renewed
        self._lost = False  # whether the claim lapsed and another run took it (every statement is then refused)
        # The connector logs each retry at an account it cannot reach as a WARNING of its own, a long line of request
        # ids, before klx's one line saying so: shown with -v (or --debug), which show every request anyway.
        if not log.isEnabledFor(logging.INFO):
            logging.getLogger("snowflake.connector").setLevel(logging.ERROR)
        try:
            # autocommit off: a DML statement opens a transaction that lasts until commit() (DDL commits too,
            # which is why the loader runs DDL first). Sessions in UTC for adopted TIMESTAMP_NTZ columns.
            self._con = snowflake.connector.connect(
                **connection,
                paramstyle="qmark",
                autocommit=False,
                application="klx",
                session_parameters={"TIMEZONE": "UTC", "QUERY_TAG": "klx"},
            )
        except snowflake.connector.Error as err:
            raise WarehouseError(
                f"cannot connect to Snowflake account {connection.get('account')!r} as {connection.get('user')!r}: {_first_line(err)}",
                hint="check destination.account, user and password (or private_key_path), warehouse, database and role",
            ) from err
        if create:
            self.ensure_schema()
        self._created = create  # whether the schema is known to exist (claim())
        self._stage_ready = False
        self._staging: set[str] = set()  # staging tables batches left, each replaced by the next: dropped at close()

    @classmethod
    def from_config(cls, config: DestinationConfig, *, create: bool = True) -> SnowflakeDestination:
        """Validate account/user with a password or a key pair, warehouse/database/schema/role; then connect."""
        import_driver(config, "snowflake.connector", "snowflake")
        check_options(config, allowed=OPTIONS, required=("account", "user", "database"))
        batch_scale = batch_scale_option(config, cls.batch_scale)
        options = {key: _reveal(value) for key, value in config.options.items() if key != "batch_scale"}
        for key, value in options.items():
            if not isinstance(value, str):
                raise ConfigError(f"destination.{key}: must be a string", where=option_where(config, key))
        if ("password" in options) == ("private_key_path" in options):
            raise ConfigError("destination: give either password or private_key_path for 'snowflake'", where=config.where)
        connection = {k: v for k, v in options.items() if k not in ("schema", "private_key_path", "private_key_passphrase")}
        if "private_key_path" in options:
            path = config_relative(config, options["private_key_path"])
            connection["private_key"] = _private_key(path, options.get("private_key_passphrase"), option_where(config, "private_key_path"))
        schema = schema_option(config, "PUBLIC")
        return cls(connection=connection, schema=schema, table_prefix=config.table_prefix, batch_scale=batch_scale, create=create)

    @property
    def connection(self) -> snowflake.connector.SnowflakeConnection:
        """The open connection (tests)."""
        return self._con

    def execute(self, kind: str, table: str, statement: exp.Expr, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """SqlDestination.execute; a change to a table klx's role does not own says how to give it the table."""
        if self._claim is not None and (self._lost or time.monotonic() - self._renewed >= RENEW_SECONDS):
            self._renew()
        try:
            return super().execute(kind, table, statement, params)
        except WarehouseError as err:
            if kind not in self._ALTERS or getattr(err.__cause__, "errno", None) != self.NOT_OWNER:
                raise
            role = self._role or "<klx's role>"
            target = sql.render(sql.table(table, self.schema), DIALECT)
            raise WarehouseError(
                err.message,
                hint=f"klx's role must own the tables it changes, RudderStack's too: GRANT OWNERSHIP ON TABLE {target} TO ROLE {role} "
                "COPY CURRENT GRANTS (docs/migrating-from-rudderstack.md, \"Snowflake: the role klx loads as\")",
            ) from err.__cause__

    @classmethod
    def preview_staging(
        cls, schema: str, table_prefix: str, columns: Sequence[Column], name: str, *, first: bool
    ) -> tuple[str, list[exp.Expr]] | None:
        """SqlDestination.preview_staging: the transient table staged() fills by PUT and COPY INTO, those statements
        (after CREATE STAGE on the first batch) and a PUT of a file named for the batch."""
        table = staging_table(table_prefix, name)
        file = Path(tempfile.gettempdir()) / "klx-batch" / "batch.parquet"
        statements = [create_stage(schema)] if first else []
        statements += [create_staging_table(table, columns, schema), put(file, schema), copy_into(table, file.name, schema)]
        return table, statements

    def claim(self) -> None:
        """base.Destination.claim: Snowflake has no lock a session holds (PostgreSQL's advisory lock), so the claim is
        a row in <PREFIX>KLX_LOCK naming this run, taken only when no other run's row is there unlapsed, and renewed
        as the run goes (execute). A run that finds its row gone (it lapsed and another run took the schema and
        prefix) stops before its next statement, its open transaction rolled back. close() deletes the row."""
        table = self.name(self.table_prefix + LOCK_TABLE)
        token, holder = uuid.uuid4().hex, f"pid {os.getpid()} on {socket.gethostname()}"
        statements = claim_statements(table, self.schema)
        if not self._created and not self.execute("READ SCHEMAS", self.schema, sql.schema_exists(self.dialect), (self.schema,)):
            return  # (klx state reset, which creates nothing: no schema, no table of the prefix to hold)
        try:
            self.execute("CREATE TABLE", table, statements["create"])
            self.execute("CLAIM", table, statements["lapsed"])
            self.execute("CLAIM", table, statements["take"], (token, holder, CLAIM_SECONDS))
            rows = self.execute("CLAIM", table, statements["read"])
            self._con.commit()
        except BaseException:
            self.rollback()
            raise
        mine = [row for row in rows if row[0] == token]
        if not mine:
            _, other, since, until = rows[0] if rows else (None, "another run", "?", "?")
            raise LockedError(
                f"schema {self.schema} with table prefix {self.table_prefix!r} is being loaded by another klx run: {other}, since "
                f"{since} UTC (its claim lapses at {until} UTC unless that run renews it)",
                hint=f"one run at a time per schema and prefix; wait for it to finish, or give this config another table_prefix. "
                f"A run that was killed holds it until it lapses, or until its row is deleted from {self.schema}.{table}",
            )
        self._claim, self._renewed = token, time.monotonic()

    def _renew(self) -> None:
        """Push this run's claim CLAIM_SECONDS on, in whatever transaction is open; LockedError when its row is gone,
        and for every statement after that."""
        table = self.name(self.table_prefix + LOCK_TABLE)
        if not self._lost:
            statements = claim_statements(table, self.schema)
            began, token = time.monotonic(), self._claim
            self._claim = None  # (the statements below are sent without renewing again)
            try:
                self.execute("RENEW CLAIM", table, statements["renew"], (CLAIM_SECONDS, token))
                self._lost = not self.execute("RENEW CLAIM", table, statements["mine"], (token,))
            finally:
                self._claim = token
            self._renewed = began
        if self._lost:
            raise LockedError(
                f"schema {self.schema} with table prefix {self.table_prefix!r}: this run's claim lapsed and another klx run "
                "took it; this run stops before writing more",
                hint=f"a run keeps its claim by sending a statement at least every {CLAIM_SECONDS // 60} minutes; what it "
                "committed before stays, and the next run goes on from there",
            )

    def run_sql(self, text: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Execute one statement and fetch its rows."""
        with self._con.cursor() as cursor:
            cursor.execute(text, list(params) or None)
            return cursor.fetchall() if cursor.description else []

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """The statements since the last commit, and those in the block, committed together; rolled back on error."""
        try:
            yield
            self._con.commit()
        except BaseException:
            self.rollback()
            raise

    def rollback(self) -> None:
        """Roll back the open transaction, if any."""
        with contextlib.suppress(self._driver.Error):
            self._con.rollback()

    @contextlib.contextmanager
    def staged(self, batch: pa.Table, columns: Sequence[Column], name: str = STAGING_TABLE) -> Iterator[str]:
        """`batch` as Parquet, PUT into the session's temporary stage and COPYed INTO a transient table.

        The table (not TEMPORARY: fakesnow cannot COPY into one) is named after the prefix and replaced by the
        next batch: dropped at close(), or at once when the batch fails, not after every batch (a round trip a
        batch, on a service where each costs a tenth of a second to a second). JSON columns travel as text; the
        upsert parses them into VARIANT.
        """
        declared = {c.name: c for c in columns}
        staged = [declared.get(n, Column(name=n, type=ColumnType.BIGINT)) for n in batch.column_names]
        table = staging_table(self.table_prefix, name)
        if not self._stage_ready:
            self.execute("CREATE STAGE", STAGE, create_stage(self.schema))
            self._stage_ready = True
        self.execute("CREATE TABLE", table, create_staging_table(table, staged, self.schema))
        import pyarrow.parquet as pq  # only a Snowflake load writes Parquet: 4.7 MB and ~40 ms no other run needs

        with tempfile.TemporaryDirectory(prefix="klx-") as folder:
            path = Path(folder) / f"{uuid.uuid4().hex}.parquet"
            pq.write_table(batch, path)
            self.execute("PUT", table, put(path, self.schema))
            self.execute("COPY INTO", table, copy_into(table, path.name, self.schema))
        self._staging.add(table)
        try:
            yield table
        except BaseException:
            self._staging.discard(table)
            self.execute("DROP TABLE", table, sql.drop_table(table, schema=self.schema))
            raise

    def close(self) -> None:
        """Drop the staging tables the batches left, delete the run's claim, then release the connection.

        A DROP refused here (a connection lost at the end) leaves a transient table the next run's first batch
        replaces: a warning, never the run's outcome.
        """
        try:
            for table in sorted(self._staging) if not self._lost else ():  # (the run that took the claim stages there now)
                self.execute("DROP TABLE", table, sql.drop_table(table, schema=self.schema))
        except WarehouseError as err:
            log.warning("staging table %s.%s was left in place (the next run replaces it): %s", self.schema, table, err)
        finally:
            self._staging.clear()
            try:
                self._release()
            finally:
                self._con.close()

    def _release(self) -> None:
        """Delete this run's claim, if it holds one; one it cannot delete lapses on its own (a warning)."""
        token, self._claim = self._claim, None
        if token is None or self._lost:  # (a lost claim's row is another run's now)
            return
        table = self.name(self.table_prefix + LOCK_TABLE)
        try:
            self.rollback()  # nothing of a failed batch is committed with it
            self.execute("RELEASE CLAIM", table, claim_statements(table, self.schema)["release"], (token,))
            self._con.commit()
        except (WarehouseError, *self.driver_errors) as err:
            log.warning("this run's claim in %s.%s was left in place (it lapses within %d minutes): %s",
                        self.schema, table, CLAIM_SECONDS // 60, err)


def claim_statements(table: str, schema: str) -> dict[str, exp.Expr]:
    """The statements of claim(), _renew() and _release() on the lock table `table` (its name as stored).

    Taking it: DELETE of a lapsed row, then INSERT of this run's row only when none is left, then the rows read
    back, in one transaction. The DELETE locks the table until commit, so two runs claiming at once take turns,
    and the second one's INSERT, a later statement, sees the first one's row."""
    target = sql.render(sql.table(table, schema), DIALECT)
    texts = {
        "create": f"CREATE TABLE IF NOT EXISTS {target} (TOKEN VARCHAR, HOLDER VARCHAR, SINCE TIMESTAMP_TZ, EXPIRES TIMESTAMP_TZ)",
        "lapsed": f"DELETE FROM {target} WHERE EXPIRES < CURRENT_TIMESTAMP()",
        "take": f"INSERT INTO {target} (TOKEN, HOLDER, SINCE, EXPIRES) SELECT ?, ?, CURRENT_TIMESTAMP(), "
        f"DATEADD(SECOND, ?, CURRENT_TIMESTAMP()) WHERE NOT EXISTS (SELECT 1 FROM {target})",
        "read": f"SELECT TOKEN, HOLDER, TO_VARCHAR(CONVERT_TIMEZONE('UTC', SINCE), 'YYYY-MM-DD HH24:MI:SS'), "
        f"TO_VARCHAR(CONVERT_TIMEZONE('UTC', EXPIRES), 'YYYY-MM-DD HH24:MI:SS') FROM {target} ORDER BY SINCE",
        "renew": f"UPDATE {target} SET EXPIRES = DATEADD(SECOND, ?, CURRENT_TIMESTAMP()) WHERE TOKEN = ?",
        "mine": f"SELECT 1 FROM {target} WHERE TOKEN = ?",
        "release": f"DELETE FROM {target} WHERE TOKEN = ?",
    }
    return {name: sqlglot.parse_one(text, read=DIALECT) for name, text in texts.items()}


def staging_table(table_prefix: str, name: str = STAGING_TABLE) -> str:
    """The transient table a batch is COPYed into: <PREFIX>KLX_BATCH (<PREFIX>KLX_DELETES for keys to delete)."""
    return sql.rules(DIALECT).identifier(table_prefix + name.strip("_"))


def create_staging_table(table: str, columns: Sequence[Column], schema: str) -> exp.Create:
    """CREATE OR REPLACE TRANSIENT TABLE `table` in `schema` for a staged batch (JSON travels as text)."""
    create = sql.create_temporary_table(table, columns, DIALECT)
    create.set("this", exp.Schema(this=sql.table(table, schema), expressions=create.this.expressions))
    create.set("properties", exp.Properties(expressions=[exp.TransientProperty()]))
    create.set("replace", True)
    return create


def stage_ref(schema: str, file: str | None = None) -> exp.Var:
    """@"SCHEMA"."KLX_STAGE"[/file]: the stage as COPY and PUT name it (identifiers quoted like every other)."""
    stage = "@" + sql.render(sql.table(sql.rules(DIALECT).identifier(STAGE), schema), DIALECT)
    return exp.var(f"{stage}/{file}" if file else stage)


def create_stage(schema: str) -> exp.Create:
    """CREATE TEMPORARY STAGE IF NOT EXISTS in `schema`."""
    stage = sql.table(sql.rules(DIALECT).identifier(STAGE), schema)
    return exp.Create(this=stage, kind="STAGE", exists=True, properties=exp.Properties(expressions=[exp.TemporaryProperty()]))


def put(path: Path, schema: str) -> exp.Put:
    """PUT one local Parquet file into the stage, as it is (Parquet is compressed already)."""
    options = [exp.Property(this=exp.var("AUTO_COMPRESS"), value=exp.false()), exp.Property(this=exp.var("OVERWRITE"), value=exp.true())]
    return exp.Put(this=exp.Literal.string(path.resolve().as_uri()), target=stage_ref(schema), properties=exp.Properties(expressions=options))


def copy_into(table: str, file: str, schema: str) -> exp.Copy:
    """COPY INTO `table` one staged Parquet file (`file`: a name klx made), columns matched by name, then purged."""
    params = [
        exp.CopyParameter(this=exp.var("FILE_FORMAT"), expressions=[exp.Property(this=exp.var("TYPE"), value=exp.var("PARQUET"))]),
        exp.CopyParameter(this=exp.var("MATCH_BY_COLUMN_NAME"), expression=exp.var("CASE_SENSITIVE")),
        exp.CopyParameter(this=exp.var("PURGE"), expression=exp.true()),
    ]
    return exp.Copy(this=sql.table(table, schema), kind=True, files=[exp.Table(this=stage_ref(schema, file))], params=params)


def _private_key(path: str, passphrase: str | None, where: str) -> bytes:
    """The key pair's private key as DER bytes, what the connector takes; read from a PEM file."""
    from cryptography.hazmat.primitives import serialization  # a dependency of the connector

    try:
        pem = Path(path).read_bytes()
        key = serialization.load_pem_private_key(pem, password=passphrase.encode() if passphrase else None)
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError(f"destination.private_key_path: cannot read a PEM private key from {path!r} ({type(err).__name__})", where=where) from err
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _reveal(value: Any) -> Any:
    """A Secret's value (config wraps passwords), anything else as it is."""
    return value.reveal() if hasattr(value, "reveal") else value


