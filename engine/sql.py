"""sqlglot expressions for every destination: DDL, type widening, staging dedup, MERGE, state."""

from __future__ import annotations

from typing import Sequence

from sqlglot import exp

from engine.schema import Column, ColumnType

# Columns the engine adds to a staged batch; API field names never start with "__klx_".
SEQ_COLUMN = "__klx_seq"  # position of the row in its batch: later rows win ties
_RANK_COLUMN = "__klx_rank"

STATE_TABLE = "klx_state"  # prefixed with the destination's table_prefix
STATE_COLUMNS = (
    Column(name="stream", type=ColumnType.TEXT),
    Column(name="state", type=ColumnType.TEXT),  # JSON text, readable by every warehouse
    Column(name="updated_at", type=ColumnType.TIMESTAMP),
)


def _types(dialect: str, names: dict[ColumnType, str]) -> dict[ColumnType, exp.DataType]:
    return {ctype: exp.DataType.build(name, dialect=dialect) for ctype, name in names.items()}


TYPE_MAP: dict[str, dict[ColumnType, exp.DataType]] = {
    "duckdb": _types(
        "duckdb",
        {
            ColumnType.BOOLEAN: "BOOLEAN",
            ColumnType.BIGINT: "BIGINT",
            ColumnType.DOUBLE: "DOUBLE",
            ColumnType.TIMESTAMP: "TIMESTAMPTZ",
            ColumnType.TEXT: "VARCHAR",
            ColumnType.JSON: "JSON",
        },
    ),
    "postgres": _types(
        "postgres",
        {
            ColumnType.BOOLEAN: "BOOLEAN",
            ColumnType.BIGINT: "BIGINT",
            ColumnType.DOUBLE: "DOUBLE PRECISION",
            ColumnType.TIMESTAMP: "TIMESTAMPTZ",
            ColumnType.TEXT: "TEXT",
            ColumnType.JSON: "JSONB",
        },
    ),
    "snowflake": _types(
        "snowflake",
        {
            ColumnType.BOOLEAN: "BOOLEAN",
            ColumnType.BIGINT: "BIGINT",  # Snowflake's NUMBER(38,0)
            ColumnType.DOUBLE: "FLOAT",
            ColumnType.TIMESTAMP: "TIMESTAMP_TZ",
            ColumnType.TEXT: "VARCHAR",
            ColumnType.JSON: "VARIANT",
        },
    ),
}

# Dialects without an entry use sqlglot's own spelling of these.
_DEFAULT_TYPES = _types(
    "",
    {
        ColumnType.BOOLEAN: "BOOLEAN",
        ColumnType.BIGINT: "BIGINT",
        ColumnType.DOUBLE: "DOUBLE",
        ColumnType.TIMESTAMP: "TIMESTAMPTZ",
        ColumnType.TEXT: "TEXT",
        ColumnType.JSON: "JSON",
    },
)

# Where CAST(text AS <json type>) would store a string instead of parsing it.
_PARSE_JSON_DIALECTS = frozenset({"snowflake", "bigquery", "redshift"})

# Types a column may widen between without going to TEXT.
_NUMERIC = frozenset({ColumnType.BIGINT, ColumnType.DOUBLE})


def data_type(ctype: ColumnType, dialect: str) -> exp.DataType:
    """The warehouse type `ctype` is stored as in `dialect`."""
    return TYPE_MAP.get(dialect, _DEFAULT_TYPES)[ctype].copy()


def column_type_of(dtype: exp.DataType, dialect: str) -> ColumnType | None:
    """The ColumnType a warehouse type maps back to, or None for a type klx never creates."""
    for ctype, mapped in TYPE_MAP.get(dialect, _DEFAULT_TYPES).items():
        if mapped.this == dtype.this:
            return ctype
    return None


def widest(current: ColumnType, incoming: ColumnType) -> ColumnType:
    """The narrowest type holding values of both: BIGINT→DOUBLE, anything else mixed→TEXT."""
    if current == incoming:
        return current
    if {current, incoming} <= _NUMERIC:
        return ColumnType.DOUBLE
    return ColumnType.TEXT


def ident(name: str) -> exp.Identifier:
    """A quoted identifier."""
    return exp.to_identifier(name, quoted=True)


def col(name: str, table: str | None = None) -> exp.Column:
    """A quoted, optionally qualified column reference."""
    return exp.column(ident(name), table=ident(table) if table else None)


def table(name: str, schema: str | None = None, alias: str | None = None) -> exp.Table:
    """A quoted, optionally schema-qualified table reference."""
    ref = exp.table_(ident(name), db=ident(schema) if schema else None)
    return ref.as_(ident(alias), table=True) if alias else ref  # type: ignore[return-value]


def render(expression: exp.Expr, dialect: str, *, pretty: bool = False) -> str:
    """SQL text of `expression` in `dialect`."""
    return expression.sql(dialect=dialect, pretty=pretty)


def cast_to(value: exp.Expr, ctype: ColumnType, dialect: str) -> exp.Expr:
    """`value` converted to the warehouse type of `ctype`; JSON text is parsed, not stored as a string."""
    if ctype is ColumnType.JSON and dialect in _PARSE_JSON_DIALECTS:
        return exp.ParseJSON(this=value)
    return exp.cast(value, data_type(ctype, dialect))


def create_schema(schema: str) -> exp.Create:
    """CREATE SCHEMA IF NOT EXISTS."""
    return exp.Create(this=exp.Table(db=ident(schema)), kind="SCHEMA", exists=True)


def create_table(
    name: str, columns: Sequence[Column], dialect: str, *, schema: str | None = None, if_not_exists: bool = False
) -> exp.Create:
    """CREATE TABLE with `columns` in order."""
    defs = [exp.ColumnDef(this=ident(c.name), kind=data_type(c.type, dialect)) for c in columns]
    return exp.Create(
        this=exp.Schema(this=table(name, schema), expressions=defs),
        kind="TABLE",
        exists=if_not_exists,
    )


def create_table_like(name: str, source: str, *, schema: str | None = None) -> exp.Create:
    """CREATE TABLE `name` with the columns of `source` and no rows."""
    empty = exp.select(exp.Star()).from_(table(source, schema)).where(exp.false())
    return exp.Create(this=table(name, schema), kind="TABLE", expression=empty)


def add_column(name: str, column: Column, dialect: str, *, schema: str | None = None) -> exp.Alter:
    """ALTER TABLE ... ADD COLUMN."""
    definition = exp.ColumnDef(this=ident(column.name), kind=data_type(column.type, dialect))
    return exp.Alter(this=table(name, schema), kind="TABLE", actions=[definition])


def alter_column_type(name: str, column: Column, dialect: str, *, schema: str | None = None) -> exp.Alter:
    """ALTER TABLE ... ALTER COLUMN ... TYPE ... USING a cast of the old values."""
    to = data_type(column.type, dialect)
    change = exp.AlterColumn(this=ident(column.name), dtype=to, using=cast_to(col(column.name), column.type, dialect))
    return exp.Alter(this=table(name, schema), kind="TABLE", actions=[change])


def drop_table(name: str, *, schema: str | None = None) -> exp.Drop:
    """DROP TABLE IF EXISTS."""
    return exp.Drop(tables=[table(name, schema)], kind="TABLE", exists=True)


def rename_table(name: str, new_name: str, *, schema: str | None = None) -> exp.Alter:
    """ALTER TABLE ... RENAME TO (the new name stays in the same schema)."""
    return exp.Alter(this=table(name, schema), kind="TABLE", actions=[exp.AlterRename(this=table(new_name))])


def replace_rows(target: str, source: str, columns: Sequence[str], *, schema: str | None = None) -> list[exp.Expr]:
    """DELETE every row of `target`, then INSERT the `columns` of every row of `source`."""
    delete = exp.delete(table(target, schema))
    rows = exp.select(*(col(c) for c in columns)).from_(table(source, schema))
    insert = exp.insert(rows, table(target, schema), columns=[ident(c) for c in columns])
    return [delete, insert]


def count_values(name: str, column: str, *, schema: str | None = None) -> exp.Select:
    """SELECT COUNT(column): how many non-null values a column holds."""
    return exp.select(exp.Count(this=col(column))).from_(table(name, schema))


def count_rows(name: str, *, schema: str | None = None) -> exp.Select:
    """SELECT COUNT(*): how many rows a table holds."""
    return exp.select(exp.Count(this=exp.Star())).from_(table(name, schema))


def table_columns() -> exp.Select:
    """(column_name, data_type) of one table from information_schema; parameters: schema, table name."""
    info = exp.table_(ident("columns"), db=ident("information_schema"))
    where = exp.and_(col("table_schema").eq(exp.Placeholder()), col("table_name").eq(exp.Placeholder()))
    return (
        exp.select(col("column_name"), col("data_type"))
        .from_(info)
        .where(where)
        .order_by(col("ordinal_position"))
    )


def staged_rows(
    staging: str,
    columns: Sequence[Column],
    primary_key: Sequence[str],
    cursor: str | None,
    dialect: str,
    *,
    schema: str | None = None,
) -> exp.Select:
    """One row per primary key from `staging`, cast to the table's types (every row when there is no key).

    The row kept has the greatest cursor; ties go to the later row (SEQ_COLUMN). `staging` must carry SEQ_COLUMN.
    """
    casts = [exp.alias_(cast_to(col(c.name), c.type, dialect), ident(c.name)) for c in columns]
    if not primary_key:
        return exp.select(*casts).from_(table(staging, schema))
    order = [exp.Ordered(this=col(cursor), desc=True, nulls_first=False)] if cursor else []
    order.append(exp.Ordered(this=col(SEQ_COLUMN), desc=True, nulls_first=False))
    rank = exp.Window(
        this=exp.RowNumber(),
        partition_by=[col(k) for k in primary_key],
        order=exp.Order(expressions=order),
    )
    ranked = exp.select(*casts, exp.alias_(rank, ident(_RANK_COLUMN))).from_(table(staging, schema))
    return (
        exp.select(*(col(c.name) for c in columns))
        .from_(ranked.subquery(ident("ranked")))
        .where(col(_RANK_COLUMN).eq(exp.Literal.number(1)))
    )


def merge(
    target: str,
    source: exp.Select,
    columns: Sequence[str],
    primary_key: Sequence[str],
    cursor: str | None,
    *,
    schema: str | None = None,
) -> exp.Merge:
    """MERGE `source` (one row per key) into `target`; a matched row changes only if its cursor advanced.

    Equal cursors leave the row untouched; with no cursor the source always wins.
    """
    on = exp.and_(*(col(k, "t").eq(col(k, "s")) for k in primary_key))
    newer = None
    if cursor:
        newer = exp.paren(exp.or_(col(cursor, "t").is_(exp.null()), col(cursor, "s") > col(cursor, "t")))
    update = exp.Update(expressions=[col(c).eq(col(c, "s")) for c in columns])
    insert = exp.Insert(
        this=exp.Tuple(expressions=[col(c) for c in columns]),
        expression=exp.Tuple(expressions=[col(c, "s") for c in columns]),
    )
    return exp.merge(
        exp.When(matched=True, condition=newer, then=update),
        exp.When(matched=False, then=insert),
        into=table(target, schema, alias="t"),
        using=source.subquery(ident("s")),
        on=on,
    )


def append(target: str, source: exp.Select, columns: Sequence[str], *, schema: str | None = None) -> exp.Insert:
    """INSERT every row of `source`: the load of a table without a primary key."""
    return exp.insert(source, table(target, schema), columns=[ident(c) for c in columns])


def create_state_table(prefix: str, dialect: str, *, schema: str | None = None) -> exp.Create:
    """CREATE TABLE IF NOT EXISTS <prefix>klx_state (stream, state, updated_at)."""
    return create_table(prefix + STATE_TABLE, STATE_COLUMNS, dialect, schema=schema, if_not_exists=True)


def select_state(prefix: str, *, schema: str | None = None) -> exp.Select:
    """The saved state text of one stream; the stream name is parameter 1."""
    return (
        exp.select(col("state"))
        .from_(table(prefix + STATE_TABLE, schema))
        .where(col("stream").eq(exp.Placeholder()))
    )


def upsert_state(prefix: str, dialect: str, *, schema: str | None = None) -> exp.Merge:
    """MERGE one stream's state; parameters: stream name, then state JSON text."""
    row = exp.select(
        exp.alias_(cast_to(exp.Placeholder(), ColumnType.TEXT, dialect), ident("stream")),
        exp.alias_(cast_to(exp.Placeholder(), ColumnType.TEXT, dialect), ident("state")),
        exp.alias_(exp.CurrentTimestamp(), ident("updated_at")),
    )
    return merge(prefix + STATE_TABLE, row, [c.name for c in STATE_COLUMNS], ["stream"], None, schema=schema)


def delete_keys(target: str, keys: str, primary_key: Sequence[str], *, schema: str | None = None) -> exp.Delete:
    """DELETE the rows of `target` whose primary key appears in `keys` (a staged table of key columns)."""
    match = exp.and_(*(col(k, "t").eq(col(k, "k")) for k in primary_key))
    found = exp.select(exp.Literal.number(1)).from_(table(keys, alias="k")).where(match)
    return exp.delete(table(target, schema, alias="t"), where=exp.Exists(this=found))
