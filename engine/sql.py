"""sqlglot expressions for every destination: DDL, type widening, staging dedup, MERGE, state."""

from __future__ import annotations

import functools
from typing import Mapping, Sequence

from sqlglot import exp

from engine.dialects import DIALECTS, Dialect
from engine.schema import Column, ColumnType

# Columns the engine adds to a staged batch; API field names never start with "__klx_".
SEQ_COLUMN = "__klx_seq"  # position of the row in its batch: later rows win ties
_RANK_COLUMN = "__klx_rank"
_ORDER_COLUMN = "__klx_order"  # a repeated key's row's place in load order
_BEFORE_COLUMN = "__klx_before"  # the greatest cursor of a repeated key's rows before this one
_PRESENT_COLUMN = "__klx_present"  # 1 where the pending row's key is in the target
_HELD_COLUMN = "__klx_held"  # the greatest cursor the target holds for the key
_ROW_ALIAS = "__klx_row"  # a subquery's rows, compared column by column where a dialect compares no rows (row_in)
WIDEN_SUFFIX = "__klx_widen"  # the new column a widening by copy fills before it takes the old one's name

STATE_TABLE = "klx_state"  # prefixed with the destination's table_prefix
STATE_COLUMNS = (
    Column(name="stream", type=ColumnType.TEXT),
    Column(name="state", type=ColumnType.TEXT),  # JSON text, readable by every warehouse
    Column(name="updated_at", type=ColumnType.TIMESTAMP),
)


@functools.cache
def type_map(dialect: str) -> dict[ColumnType, exp.DataType]:
    """The warehouse type of each ColumnType in `dialect` (sqlglot's own spelling for dialects klx does not list).

    Built on first use: parsing the names loads that dialect in sqlglot, and a run needs only its destination's.
    """
    names = DIALECTS[dialect].types if dialect in DIALECTS else _DEFAULT_TYPE_NAMES
    return {ctype: exp.DataType.build(name, dialect=dialect if dialect in DIALECTS else "") for ctype, name in names.items()}


_DEFAULT_TYPE_NAMES = {
    ColumnType.BOOLEAN: "BOOLEAN",
    ColumnType.BIGINT: "BIGINT",
    ColumnType.DOUBLE: "DOUBLE",
    ColumnType.TIMESTAMP: "TIMESTAMPTZ",
    ColumnType.TEXT: "TEXT",
    ColumnType.JSON: "JSON",
}
_DEFAULT_DIALECT = Dialect(name="", types={}, max_identifier=63)

# Types a column may widen between without going to TEXT.
_NUMERIC = frozenset({ColumnType.BIGINT, ColumnType.DOUBLE})

# Dialects whose ALTER COLUMN ... TYPE ... USING converts values in place; the others widen by copy.
_ALTER_USING = frozenset({"duckdb", "postgres"})

# Existing warehouse types (tables klx did not create, e.g. RudderStack's) and the ColumnType whose values
# they hold as they are. A type missing here is one klx cannot write into without changing it.
_T = exp.DataType.Type
FAMILIES: dict[exp.DataType.Type, ColumnType] = {
    **dict.fromkeys((_T.BOOLEAN,), ColumnType.BOOLEAN),
    **dict.fromkeys((_T.BIGINT, _T.INT, _T.SMALLINT, _T.TINYINT, _T.MEDIUMINT, _T.UINT, _T.UBIGINT, _T.INT128), ColumnType.BIGINT),
    **dict.fromkeys((_T.DOUBLE, _T.FLOAT, _T.DECIMAL, _T.BIGDECIMAL), ColumnType.DOUBLE),
    **dict.fromkeys(
        (_T.TIMESTAMP, _T.TIMESTAMPTZ, _T.TIMESTAMPLTZ, _T.TIMESTAMPNTZ, _T.DATETIME, _T.TIMESTAMP_S, _T.TIMESTAMP_MS),
        ColumnType.TIMESTAMP,
    ),
    **dict.fromkeys((_T.TEXT, _T.VARCHAR, _T.NVARCHAR, _T.CHAR, _T.NCHAR, _T.BPCHAR, _T.NAME), ColumnType.TEXT),
    **dict.fromkeys((_T.JSON, _T.JSONB, _T.VARIANT, _T.SUPER, _T.OBJECT), ColumnType.JSON),
}


def rules(dialect: str) -> Dialect:
    """The data-driven rules of `dialect` (a neutral default for dialects klx does not list)."""
    return DIALECTS.get(dialect, _DEFAULT_DIALECT)


def data_type(ctype: ColumnType, dialect: str) -> exp.DataType:
    """The warehouse type `ctype` is stored as in `dialect`."""
    return type_map(dialect)[ctype].copy()


def column_type_of(dtype: exp.DataType, dialect: str) -> ColumnType | None:
    """The ColumnType a warehouse type maps back to, or None for a type klx never creates."""
    for ctype, mapped in type_map(dialect).items():
        if mapped.this == dtype.this:
            return ctype
    return None


def keys_alike(dtype: exp.DataType, kind: ColumnType) -> bool:
    """Whether staged `kind` keys cast into a column of `dtype` are equal exactly when the staged values are.

    Text into VARCHAR or TEXT (Snowflake reports its VARCHAR columns as TEXT), integers into any integer type
    (NUMBER(38,0) included): compared value for value. CHAR pads and NAME truncates, so neither is alike.
    """
    if kind is ColumnType.TEXT:
        return dtype.this in (_T.VARCHAR, _T.TEXT)
    return kind is ColumnType.BIGINT and family(dtype) is ColumnType.BIGINT


def family(dtype: exp.DataType) -> ColumnType | None:
    """The ColumnType whose values an existing column of type `dtype` holds; None when klx cannot write to it.

    DECIMAL with scale 0 (Snowflake's NUMBER(38,0), RudderStack's integers) holds BIGINT values only.
    """
    if dtype.this is _T.DECIMAL and len(dtype.expressions) == 2 and dtype.expressions[1].name == "0":
        return ColumnType.BIGINT
    return FAMILIES.get(dtype.this)


def holds(dtype: exp.DataType, incoming: ColumnType) -> bool:
    """Whether an existing column of type `dtype` takes `incoming` values as they are (TEXT takes anything)."""
    kind = family(dtype)
    return kind is not None and widest(kind, incoming) is kind


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
    return compare_rows(expression, rules(dialect).row_in).sql(dialect=dialect, pretty=pretty)


def compare_rows(expression: exp.Expr, form: str) -> exp.Expr:
    """`expression` with every `(a, b, ...) IN (subquery)` written in `form` (Dialect.row_in); a copy where it changes."""
    if form == "tuple" or not any(map(_compares_rows, expression.find_all(exp.In))):
        return expression
    expression = expression.copy()
    # Breadth first, reversed: the innermost first, so that an outer one's subquery holds it rewritten.
    for node in reversed([node for node in expression.find_all(exp.In) if _compares_rows(node)]):
        query = node.args["query"].this
        if form == "struct":
            query.set("kind", "STRUCT")
        elif form == "exists":
            node.replace(_exists(node.this, query, node.find_ancestor(exp.Delete, exp.Select)))
        else:
            raise ValueError(f"unknown row comparison {form!r}")
    return expression


def _compares_rows(node: exp.In) -> bool:
    return isinstance(node.this, exp.Tuple) and isinstance(node.args.get("query"), exp.Subquery)


def _exists(row: exp.Tuple, rows: exp.Select, statement: exp.Delete | exp.Select | None) -> exp.Exists:
    """(a, b) IN (SELECT a, b ...) as EXISTS (SELECT 1 FROM (SELECT a, b ...) AS r WHERE r.a = t.a AND r.b = t.b),
    t the table the statement reads or deletes from, named in full (Redshift's DELETE takes no alias).

    The same rows where no compared value is null: those compared here are primary keys and load times."""
    source = statement.args.get("from_") if isinstance(statement, exp.Select) else None
    target = statement.this if isinstance(statement, exp.Delete) else source.this if source is not None else None
    columns = row.expressions
    if not isinstance(target, exp.Table) or len(rows.named_selects) != len(columns) or not all(isinstance(c, exp.Column) for c in columns):
        raise ValueError(f"cannot write {row.sql()} IN (...) as EXISTS: no table to compare with, or not columns alike")
    alias = target.args.get("alias")
    qualifier = {"table": alias.this} if alias is not None else {"table": target.this, "db": target.args.get("db")}
    match = [
        exp.column(ident(inner), table=ident(_ROW_ALIAS)).eq(exp.column(column.this.copy(), **{k: v.copy() for k, v in qualifier.items() if v}))
        for inner, column in zip(rows.named_selects, columns)
    ]
    return exp.Exists(this=exp.select(exp.Literal.number(1)).from_(rows.subquery(ident(_ROW_ALIAS))).where(exp.and_(*match)))


def cast_to(value: exp.Expr, ctype: ColumnType, dialect: str, into: exp.DataType | None = None) -> exp.Expr:
    """`value` converted to the warehouse type of `ctype` (or to the existing type `into`).

    JSON text is parsed, not stored as a string.
    """
    to = into.copy() if into is not None else data_type(ctype, dialect)
    if ctype is ColumnType.JSON and rules(dialect).parse_json and (into is None or family(into) is ColumnType.JSON):
        return exp.ParseJSON(this=value)
    return exp.cast(value, to)


def schema_exists(dialect: str = "") -> exp.Select:
    """SELECT 1 when a schema exists; parameter: the schema name (a role may lack the right to CREATE it)."""
    name = rules(dialect).identifier
    catalog, table, column = rules(dialect).schemas
    info = exp.table_(ident(name(table)), db=ident(name(catalog)))
    return exp.select(exp.Literal.number(1)).from_(info).where(_names(col(name(column)), 1, dialect))


def _names(column: exp.Column, count: int, dialect: str) -> exp.Expr:
    """`column` equal to one parameter (count 1) or among `count` of them, as the warehouse matches names: without
    regard to case where it finds them so (Dialect.names_ignore_case)."""
    wanted: list[exp.Expr] = [exp.Placeholder() for _ in range(count)]
    if rules(dialect).names_ignore_case:
        column, wanted = exp.Lower(this=column), [exp.Lower(this=w) for w in wanted]  # type: ignore[assignment]
    return column.eq(wanted[0]) if count == 1 else exp.In(this=column, expressions=wanted)


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


def create_table_like(name: str, source: str, *, schema: str | None = None, columns: Sequence[str] | None = None) -> exp.Create:
    """CREATE TABLE `name` with the columns of `source` (or those of them named in `columns`, in that order) and no rows."""
    chosen = [col(c) for c in columns] if columns else [exp.Star()]
    empty = exp.select(*chosen).from_(table(source, schema)).where(exp.false())
    return exp.Create(this=table(name, schema), kind="TABLE", expression=empty)


def create_shadow(name: str, source: str, dialect: str, *, schema: str | None = None) -> exp.Create:
    """CREATE TABLE `name` with the columns of `source` and no rows: a full refresh's shadow of the table it replaces.

    Where the swap moves privilege grants with the contents (Dialect.copy_grants), LIKE ... COPY GRANTS gives the
    shadow the table's grants, which the swap then leaves on the table's name.
    """
    if not rules(dialect).copy_grants:
        return create_table_like(name, source, schema=schema)
    like = exp.LikeProperty(this=table(source, schema))
    return exp.Create(this=table(name, schema), kind="TABLE", properties=exp.Properties(expressions=[like, exp.CopyGrantsProperty()]))


def add_column(name: str, column: Column, dialect: str, *, schema: str | None = None) -> exp.Alter:
    """ALTER TABLE ... ADD COLUMN."""
    definition = exp.ColumnDef(this=ident(column.name), kind=data_type(column.type, dialect))
    return exp.Alter(this=table(name, schema), kind="TABLE", actions=[definition])


def widen_column(name: str, column: Column, dialect: str, *, schema: str | None = None) -> list[exp.Expr]:
    """Change a column to the wider type of `column`, converting its values.

    In place (ALTER ... USING) where the dialect can; elsewhere (Snowflake, Redshift, BigQuery, Databricks)
    through a new column: add, copy, drop the old one, rename the new one.
    """
    if dialect in _ALTER_USING:
        to = data_type(column.type, dialect)
        change = exp.AlterColumn(this=ident(column.name), dtype=to, using=cast_to(col(column.name), column.type, dialect))
        return [exp.Alter(this=table(name, schema), kind="TABLE", actions=[change])]
    temporary = rules(dialect).identifier(column.name + WIDEN_SUFFIX)
    add = add_column(name, Column(name=temporary, type=column.type), dialect, schema=schema)
    copy = exp.Update(this=table(name, schema), expressions=[col(temporary).eq(cast_to(col(column.name), column.type, dialect))])
    drop = exp.Drop(tables=[col(column.name)], kind="COLUMN")
    rename = exp.RenameColumn(this=col(temporary), to=col(column.name))
    return [
        add,
        copy,
        exp.Alter(this=table(name, schema), kind="TABLE", actions=[drop]),
        exp.Alter(this=table(name, schema), kind="TABLE", actions=[rename]),
    ]


def drop_table(name: str, *, schema: str | None = None) -> exp.Drop:
    """DROP TABLE IF EXISTS."""
    return exp.Drop(tables=[table(name, schema)], kind="TABLE", exists=True)


def rename_table(name: str, new_name: str, *, schema: str | None = None) -> exp.Alter:
    """ALTER TABLE ... RENAME TO (the new name stays in the same schema)."""
    return exp.Alter(this=table(name, schema), kind="TABLE", actions=[exp.AlterRename(this=table(new_name))])


def swap_in(shadow: str, target: str, dialect: str, *, target_exists: bool, schema: str | None = None) -> list[exp.Expr]:
    """Statements that make `shadow` the new `target` (one transaction where DDL is transactional)."""
    if not target_exists:
        return [rename_table(shadow, target, schema=schema)]
    if rules(dialect).swap == "swap":
        swap = exp.Alter(this=table(target, schema), kind="TABLE", actions=[exp.SwapTable(this=table(shadow, schema))])
        return [swap, drop_table(shadow, schema=schema)]
    return [drop_table(target, schema=schema), rename_table(shadow, target, schema=schema)]


def grant(privileges: Sequence[str], name: str, grantee: str | None, *, grant_option: bool = False, schema: str | None = None) -> exp.Grant:
    """GRANT `privileges` ON TABLE `name` TO `grantee` (a role; None: PUBLIC) [WITH GRANT OPTION]."""
    principal = exp.GrantPrincipal(this=ident(grantee) if grantee is not None else exp.var("PUBLIC"))
    return exp.Grant(
        privileges=[exp.GrantPrivilege(this=exp.var(p)) for p in privileges],
        kind="TABLE",
        securable=table(name, schema),
        principals=[principal],
        grant_option=grant_option,
    )


def create_temporary_table(name: str, columns: Sequence[Column], dialect: str) -> exp.Create:
    """CREATE TEMPORARY TABLE for a staged batch (JSON travels as text and is parsed by the load)."""
    staged = [Column(name=c.name, type=ColumnType.TEXT if c.type is ColumnType.JSON else c.type) for c in columns]
    create = create_table(name, staged, dialect)
    create.set("properties", exp.Properties(expressions=[exp.TemporaryProperty()]))
    return create


def count_values(name: str, column: str, *, schema: str | None = None) -> exp.Select:
    """SELECT COUNT(column): how many non-null values a column holds."""
    return exp.select(exp.Count(this=col(column))).from_(table(name, schema))


def count_rows(name: str, *, schema: str | None = None) -> exp.Select:
    """SELECT COUNT(*): how many rows a table holds."""
    return exp.select(exp.Count(this=exp.Star())).from_(table(name, schema))


def count_rows_of(names: Sequence[str], *, schema: str | None = None) -> exp.Expr:
    """(n, rows) of each of `names`, n its place in the list: count_rows of several tables in one query."""
    counts = [exp.select(exp.Literal.number(n), exp.Count(this=exp.Star())).from_(table(name, schema)) for n, name in enumerate(names)]
    return functools.reduce(lambda union, select: exp.union(union, select, distinct=False), counts)


def table_columns(dialect: str = "") -> exp.Select:
    """(column_name, data_type, numeric_precision, numeric_scale) of one table; parameters: schema, table name.

    Names are folded like every identifier: on Snowflake information_schema is INFORMATION_SCHEMA.
    """
    return _information_columns(dialect, None)


def tables_columns(count: int, dialect: str = "") -> exp.Select:
    """table_columns() of `count` tables at once, each row led by its table's name; parameters: schema, then the
    table names."""
    return _information_columns(dialect, count)


def _information_columns(dialect: str, count: int | None) -> exp.Select:
    """information_schema.columns of one table (count None), or of `count` named ones with the table's name first."""
    name = rules(dialect).identifier
    info = exp.table_(ident(name("columns")), db=ident(name("information_schema")))
    table_name, position = col(name("table_name")), col(name("ordinal_position"))
    wanted = [col(name(c)) for c in ("column_name", "data_type", "numeric_precision", "numeric_scale")]
    named = _names(table_name.copy(), count or 1, dialect)
    order = [position]
    if count is not None:
        wanted, order = [table_name.copy(), *wanted], [table_name.copy(), position]
    schema = _names(col(name("table_schema")), 1, dialect)
    return exp.select(*wanted).from_(info).where(exp.and_(schema, named)).order_by(*order)


def length_limits(dialect: str = "") -> exp.Select:
    """(column_name, data_type, character_maximum_length) of one table's columns that cap their values' length
    (VARCHAR(n), CHAR(n)); parameters: schema, table name. Read only to explain a value the table refused."""
    name = rules(dialect).identifier
    info = exp.table_(ident(name("columns")), db=ident(name("information_schema")))
    limit = col(name("character_maximum_length"))
    capped = exp.and_(
        col(name("table_schema")).eq(exp.Placeholder()), col(name("table_name")).eq(exp.Placeholder()), limit.copy().is_(exp.null()).not_()
    )
    return exp.select(col(name("column_name")), col(name("data_type")), limit).from_(info).where(capped)


def reported_type(data_type: str, precision: int | None, scale: int | None, dialect: str) -> exp.DataType:
    """The type information_schema reports, parsed; a type sqlglot does not know stays a user-defined type."""
    try:
        dtype = exp.DataType.build(data_type, dialect=dialect)
    except Exception:  # sqlglot raises ParseError or ValueError for names it has never seen
        return exp.DataType.build(data_type, udt=True)
    if dtype.this is _T.DECIMAL and precision is not None and scale is not None:
        return exp.DataType.build(f"DECIMAL({int(precision)}, {int(scale)})")
    return dtype


def staged_rows(
    staging: str,
    columns: Sequence[Column],
    primary_key: Sequence[str],
    cursor: str | None,
    dialect: str,
    *,
    schema: str | None = None,
    existing: Mapping[str, exp.DataType] | None = None,
) -> exp.Select:
    """One row per primary key from `staging`, cast to the table's types (every row when there is no key).

    A column in `existing` is cast to that type instead: a table klx adopts keeps its own column types.
    The row kept has the greatest cursor; ties go to the later row (SEQ_COLUMN). `staging` must carry SEQ_COLUMN.
    """
    existing = existing or {}
    casts = [exp.alias_(cast_to(col(c.name), c.type, dialect, existing.get(c.name)), ident(c.name)) for c in columns]
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


def upsert(
    target: str,
    source: exp.Select,
    columns: Sequence[str],
    primary_key: Sequence[str],
    cursor: str | None,
    dialect: str,
    *,
    schema: str | None = None,
    form: str | None = None,
) -> list[exp.Expr]:
    """The statements that upsert `source` into `target` in `dialect`: one MERGE, or DELETE + INSERT.

    DELETE + INSERT (one transaction) removes the target rows the source replaces, then inserts every source
    row whose key is no longer in the target: the same rows as the MERGE, with no MERGE needed.
    """
    if (form or rules(dialect).upsert) == "merge":
        return [merge(target, source, columns, primary_key, cursor, schema=schema)]
    # Redshift's DELETE takes no alias: the target's columns are qualified by its full name.
    def old(name: str) -> exp.Column:
        return exp.column(ident(name), table=ident(target), db=ident(schema) if schema else None)

    on = exp.and_(*(old(k).eq(col(k, "s")) for k in primary_key))
    if cursor:
        on = exp.and_(on, exp.paren(exp.or_(old(cursor).is_(exp.null()), col(cursor, "s") > old(cursor))))
    delete = exp.delete(table(target, schema)).where(
        exp.Exists(this=exp.select(exp.Literal.number(1)).from_(source.copy().subquery(ident("s"))).where(on))
    )
    present = exp.select(exp.Literal.number(1)).from_(table(target, schema, alias="t"))
    present = present.where(exp.and_(*(col(k, "t").eq(col(k, "s")) for k in primary_key)))
    fresh = exp.select(*(col(c, "s") for c in columns)).from_(source.copy().subquery(ident("s")))
    fresh = fresh.where(exp.not_(exp.Exists(this=present)))
    insert = exp.insert(fresh, table(target, schema), columns=[ident(c) for c in columns])
    return [delete, insert]


def append(target: str, source: exp.Select, columns: Sequence[str], *, schema: str | None = None) -> exp.Insert:
    """INSERT every row of `source`: the load of a table without a primary key."""
    return exp.insert(source, table(target, schema), columns=[ident(c) for c in columns])


def count_repeated_keys(target: str, primary_key: Sequence[str], *, schema: str | None = None) -> exp.Select:
    """SELECT COUNT(*) of the keys `target` holds more than once (one hash aggregate over the key columns)."""
    return exp.select(exp.Count(this=exp.Star())).from_(_repeated_keys(target, primary_key, schema).subquery(ident("r")))


def superseded_counts(target: str, primary_key: Sequence[str], cursor: str | None, loaded_at: str, *, schema: str | None = None) -> exp.Select:
    """(rows of a repeated key that MERGEs of the rows in load order would not have kept, rows those MERGEs would
    have updated with), over the keys `target` holds more than once.

    A MERGE replaces a row when the table's cursor is null or the incoming one is greater (count_matches): of
    a key's rows in load order it keeps the one with the greatest cursor, the earliest of those when several
    share it, and the latest when none has a cursor (or the table has no cursor); a row after the first
    replaced the kept one when no row before it had a cursor or its cursor is greater than every one before.
    """
    ranked = _ranked_repeats(target, primary_key, cursor, loaded_at, schema)
    one, zero = exp.Literal.number(1), exp.Literal.number(0)
    removed = exp.Sum(this=exp.If(this=col(_RANK_COLUMN) > one, true=one, false=zero))
    replaced: exp.Expr = col(_ORDER_COLUMN) > one
    if cursor:
        replaced = exp.and_(replaced, exp.or_(col(_BEFORE_COLUMN).is_(exp.null()), col(cursor) > col(_BEFORE_COLUMN)))
    updated = exp.Sum(this=exp.If(this=replaced, true=one, false=zero))
    return exp.select(removed, updated).from_(ranked.subquery(ident("ranked")))


def delete_superseded(target: str, primary_key: Sequence[str], cursor: str | None, loaded_at: str, *, schema: str | None = None) -> exp.Delete:
    """DELETE the rows superseded_counts() counts as removed: each repeated key keeps the row MERGEs in load order keep.

    A row is named by its key and its loaded_at, which no two rows of one key share (a batch holds a key once).
    """
    ranked = _ranked_repeats(target, primary_key, cursor, loaded_at, schema)
    names = [*primary_key, loaded_at]
    losers = exp.select(*(col(n) for n in names)).from_(ranked.subquery(ident("ranked"))).where(col(_RANK_COLUMN) > exp.Literal.number(1))
    return exp.delete(table(target, schema), where=_row_in(names, losers))


def pending_counts(
    pending: str, target: str, primary_key: Sequence[str], cursor: str | None, loaded_at: str, *, schema: str | None = None
) -> exp.Select:
    """(keys new to `target`, updates) that MERGEs of `pending`'s rows into `target`, one batch at a time in
    load order, would have counted: what merging them at once (after delete_superseded on `pending`) must report.

    A key's first pending row is an insert when `target` lacks the key; any other row is an update when it
    replaces the row kept before it: the table's cursor was null or this one is greater. The cursor kept
    before a row is the greatest of the target's and of the earlier pending rows' (nulls ignored), as
    superseded_counts() reckons it over the pending rows alone.
    """
    one, zero = exp.Literal.number(1), exp.Literal.number(0)
    keys = lambda alias=None: [col(k, alias) for k in primary_key]  # noqa: E731 - fresh copies for each use
    held_select: list[exp.Expr] = [*keys(), exp.alias_(one.copy(), ident(_PRESENT_COLUMN))]
    if cursor:
        held_select.append(exp.alias_(exp.Max(this=col(cursor)), ident(_HELD_COLUMN)))
    touched = exp.select(one.copy()).from_(table(pending, schema, alias="p")).where(exp.and_(*(col(k, "p").eq(col(k, "t")) for k in primary_key)))
    held = exp.select(*held_select).from_(table(target, schema, alias="t")).where(exp.Exists(this=touched)).group_by(*keys())
    loaded = exp.Order(expressions=[exp.Ordered(this=col(loaded_at, "p"), desc=False, nulls_first=False)])
    ordered: list[exp.Expr] = [
        col(_PRESENT_COLUMN, "h"),
        exp.alias_(exp.Window(this=exp.RowNumber(), partition_by=keys("p"), order=loaded), ident(_ORDER_COLUMN)),
    ]
    if cursor:
        earlier = exp.WindowSpec(kind="ROWS", start="UNBOUNDED", start_side="PRECEDING", end=exp.Literal.number(1), end_side="PRECEDING")
        before = exp.Window(this=exp.Max(this=col(cursor, "p")), partition_by=keys("p"), order=loaded.copy(), spec=earlier)
        ordered += [col(cursor, "p"), exp.alias_(before, ident(_BEFORE_COLUMN)), col(_HELD_COLUMN, "h")]
    on = exp.and_(*(col(k, "p").eq(col(k, "h")) for k in primary_key))
    rows = exp.select(*ordered).from_(table(pending, schema, alias="p")).join(held.subquery(ident("h")), on=on, join_type="left")
    present = col(_PRESENT_COLUMN).is_(exp.not_(exp.null()))
    first = col(_ORDER_COLUMN).eq(one.copy())
    absent = col(_PRESENT_COLUMN).is_(exp.null())
    inserted = exp.Sum(this=exp.If(this=exp.and_(absent, first), true=one.copy(), false=zero.copy()))
    replaces: exp.Expr = exp.or_(present, col(_ORDER_COLUMN) > one.copy())
    if cursor:
        held_cursor, earlier_cursor = col(_HELD_COLUMN), col(_BEFORE_COLUMN)
        kept = exp.Case(
            ifs=[
                exp.If(this=held_cursor.is_(exp.null()), true=earlier_cursor.copy()),
                exp.If(this=earlier_cursor.copy().is_(exp.null()), true=held_cursor.copy()),
                exp.If(this=held_cursor.copy() > earlier_cursor.copy(), true=held_cursor.copy()),
            ],
            default=earlier_cursor.copy(),
        )
        replaces = exp.and_(exp.paren(replaces), exp.paren(exp.or_(kept.is_(exp.null()), col(cursor) > kept.copy())))
    updated = exp.Sum(this=exp.If(this=replaces, true=one.copy(), false=zero.copy()))
    return exp.select(inserted, updated).from_(rows.subquery(ident("ranked")))


def table_rows(name: str, columns: Sequence[str], *, schema: str | None = None) -> exp.Select:
    """SELECT `columns` FROM `name`: a table already in the target's types as the source of an upsert."""
    return exp.select(*(col(c) for c in columns)).from_(table(name, schema))


def delete_all(name: str, *, schema: str | None = None) -> exp.Delete:
    """DELETE every row of `name` (transactional everywhere, unlike TRUNCATE on some warehouses)."""
    return exp.delete(table(name, schema))


def _repeated_keys(target: str, primary_key: Sequence[str], schema: str | None) -> exp.Select:
    keys = [col(k) for k in primary_key]
    return exp.select(*keys).from_(table(target, schema)).group_by(*keys).having(exp.Count(this=exp.Star()) > exp.Literal.number(1))


def _ranked_repeats(target: str, primary_key: Sequence[str], cursor: str | None, loaded_at: str, schema: str | None) -> exp.Select:
    """The rows of keys held more than once, each with its rank (1: the row MERGEs in load order keep), its place in
    load order, and the greatest cursor of the key's rows before it."""
    keys = lambda: [col(k) for k in primary_key]  # noqa: E731 - each window takes its own copies
    loaded = lambda desc: exp.Ordered(this=col(loaded_at), desc=desc, nulls_first=False)  # noqa: E731
    kept = []
    if cursor:  # the greatest cursor; among equal ones the earliest row; without any cursor the latest
        kept.append(exp.Ordered(this=col(cursor), desc=True, nulls_first=False))
        earliest = exp.Case(ifs=[exp.If(this=col(cursor).is_(exp.null()), true=exp.null())], default=col(loaded_at))
        kept.append(exp.Ordered(this=earliest, desc=False, nulls_first=False))
    kept.append(loaded(True))
    columns: list[exp.Expr] = [
        *keys(),
        col(loaded_at),
        exp.alias_(exp.Window(this=exp.RowNumber(), partition_by=keys(), order=exp.Order(expressions=kept)), ident(_RANK_COLUMN)),
        exp.alias_(exp.Window(this=exp.RowNumber(), partition_by=keys(), order=exp.Order(expressions=[loaded(False)])), ident(_ORDER_COLUMN)),
    ]
    if cursor:
        if cursor not in primary_key:
            columns.append(col(cursor))
        before = exp.WindowSpec(kind="ROWS", start="UNBOUNDED", start_side="PRECEDING", end=exp.Literal.number(1), end_side="PRECEDING")
        greatest = exp.Window(this=exp.Max(this=col(cursor)), partition_by=keys(), order=exp.Order(expressions=[loaded(False)]), spec=before)
        columns.append(exp.alias_(greatest, ident(_BEFORE_COLUMN)))
    return exp.select(*columns).from_(table(target, schema)).where(_row_in(primary_key, _repeated_keys(target, primary_key, schema)))


def _row_in(names: Sequence[str], rows: exp.Select) -> exp.Expr:
    """(a, b, ...) IN (rows); a single column without the parentheses."""
    this: exp.Expr = col(names[0]) if len(names) == 1 else exp.Tuple(expressions=[col(n) for n in names])
    return exp.In(this=this, query=rows.subquery())


def state_table(prefix: str, dialect: str) -> str:
    """The name of the state table, as `dialect` stores it."""
    return rules(dialect).identifier(prefix + STATE_TABLE)


def _state_columns(dialect: str) -> list[Column]:
    return [Column(name=rules(dialect).identifier(c.name), type=c.type) for c in STATE_COLUMNS]


def create_state_table(prefix: str, dialect: str, *, schema: str | None = None) -> exp.Create:
    """CREATE TABLE IF NOT EXISTS <prefix>klx_state (stream, state, updated_at)."""
    return create_table(state_table(prefix, dialect), _state_columns(dialect), dialect, schema=schema, if_not_exists=True)


def select_state(prefix: str, dialect: str, *, schema: str | None = None) -> exp.Select:
    """The saved state text of one stream; the stream name is parameter 1."""
    stream, state, _ = (c.name for c in _state_columns(dialect))
    return exp.select(col(state)).from_(table(state_table(prefix, dialect), schema)).where(col(stream).eq(exp.Placeholder()))


def select_states(prefix: str, dialect: str, *, schema: str | None = None) -> exp.Select:
    """Every stream's saved state: (stream name, state text) rows."""
    stream, state, _ = (c.name for c in _state_columns(dialect))
    return exp.select(col(stream), col(state)).from_(table(state_table(prefix, dialect), schema))


def upsert_state(prefix: str, dialect: str, *, schema: str | None = None, form: str | None = None) -> list[exp.Expr]:
    """Upsert one stream's state; parameters: stream name, then state JSON text (each statement binds them)."""
    stream, state, updated_at = (c.name for c in _state_columns(dialect))
    row = exp.select(
        exp.alias_(cast_to(exp.Placeholder(), ColumnType.TEXT, dialect), ident(stream)),
        exp.alias_(cast_to(exp.Placeholder(), ColumnType.TEXT, dialect), ident(state)),
        exp.alias_(exp.CurrentTimestamp(), ident(updated_at)),
    )
    return upsert(state_table(prefix, dialect), row, [stream, state, updated_at], [stream], None, dialect, schema=schema, form=form)


def state_parameters(statement: exp.Expr, stream: str, state_text: str) -> tuple[str, ...]:
    """The parameters one statement of upsert_state binds: (stream, state) once per SELECT of the new row."""
    return (stream, state_text) * (len(list(statement.find_all(exp.Placeholder))) // 2)


def delete_keys(
    target: str, keys: str, primary_key: Sequence[str], *, schema: str | None = None, keys_schema: str | None = None
) -> exp.Delete:
    """DELETE the rows of `target` whose primary key appears in `keys` (a staged table of key columns).

    The target takes no alias (Redshift's DELETE allows none): its columns are qualified by its name.
    """
    target_col = lambda name: exp.column(ident(name), table=ident(target), db=ident(schema) if schema else None)  # noqa: E731
    match = exp.and_(*(target_col(k).eq(col(k, "k")) for k in primary_key))
    found = exp.select(exp.Literal.number(1)).from_(table(keys, keys_schema, alias="k")).where(match)
    return exp.delete(table(target, schema), where=exp.Exists(this=found))


# Run history: one row per stream of each run (klx runs, klx_runs in the warehouse).
RUNS_TABLE = "klx_runs"  # prefixed with the destination's table_prefix
RUNS_COLUMNS = (
    Column(name="run_id", type=ColumnType.TEXT),
    Column(name="started_at", type=ColumnType.TIMESTAMP),
    Column(name="ended_at", type=ColumnType.TIMESTAMP),
    Column(name="run_status", type=ColumnType.TEXT),  # succeeded | failed | interrupted
    Column(name="stream", type=ColumnType.TEXT),
    Column(name="mode", type=ColumnType.TEXT),
    Column(name="status", type=ColumnType.TEXT),  # done | failed | interrupted | not_started (older klx: queued for not_started)
    Column(name="records", type=ColumnType.BIGINT),
    Column(name="rows", type=ColumnType.BIGINT),
    Column(name="rejected", type=ColumnType.BIGINT),
    Column(name="inserted", type=ColumnType.BIGINT),
    Column(name="updated", type=ColumnType.BIGINT),
    Column(name="columns_added", type=ColumnType.TEXT),  # JSON list
    Column(name="pages", type=ColumnType.BIGINT),
    Column(name="requests", type=ColumnType.BIGINT),
    Column(name="retries", type=ColumnType.BIGINT),
    Column(name="http_429", type=ColumnType.BIGINT),
    Column(name="waited_seconds", type=ColumnType.DOUBLE),
    Column(name="seconds", type=ColumnType.DOUBLE),
    Column(name="error", type=ColumnType.TEXT),
)


def runs_table(prefix: str, dialect: str) -> str:
    """The name of the run history table, as `dialect` stores it."""
    return rules(dialect).identifier(prefix + RUNS_TABLE)


def create_runs_table(prefix: str, dialect: str, *, schema: str | None = None) -> exp.Create:
    """CREATE TABLE IF NOT EXISTS <prefix>klx_runs."""
    columns = [Column(name=rules(dialect).identifier(c.name), type=c.type) for c in RUNS_COLUMNS]
    return create_table(runs_table(prefix, dialect), columns, dialect, schema=schema, if_not_exists=True)


def insert_run_row(prefix: str, dialect: str, *, schema: str | None = None) -> exp.Insert:
    """INSERT one stream's row of a run; one parameter per RUNS_COLUMNS entry, in order."""
    name = rules(dialect).identifier
    values = exp.select(*(exp.alias_(cast_to(exp.Placeholder(), c.type, dialect), ident(name(c.name))) for c in RUNS_COLUMNS))
    return exp.insert(values, table(runs_table(prefix, dialect), schema), columns=[ident(name(c.name)) for c in RUNS_COLUMNS])


def select_runs(prefix: str, dialect: str, *, schema: str | None = None) -> exp.Select:
    """Every row of the runs whose run_id is among the newest N (parameter 1), newest first, in RUNS_COLUMNS order."""
    name = rules(dialect).identifier
    runs = table(runs_table(prefix, dialect), schema)
    run_id, started = col(name("run_id")), col(name("started_at"))
    newest = (
        exp.select(run_id.copy()).from_(runs.copy()).group_by(run_id.copy())
        .order_by(exp.Ordered(this=exp.Max(this=started.copy()), desc=True)).limit(exp.Placeholder())
    )
    # Timestamps as text: drivers differ in the Python objects they make of TIMESTAMPTZ (DuckDB needs pytz).
    shown = [exp.cast(col(name(c.name)), exp.DataType.build("TEXT")) if c.type is ColumnType.TIMESTAMP else col(name(c.name))
             for c in RUNS_COLUMNS]
    return (
        exp.select(*shown).from_(runs)
        .where(run_id.copy().isin(query=newest))
        .order_by(exp.Ordered(this=started.copy(), desc=True), run_id.copy())
    )


def delete_state(prefix: str, dialect: str, *, schema: str | None = None) -> exp.Delete:
    """DELETE one stream's saved state; the stream name is parameter 1."""
    stream = col(rules(dialect).identifier("stream"))
    return exp.delete(table(state_table(prefix, dialect), schema), where=stream.eq(exp.Placeholder()))


def count_matches(
    target: str, source: exp.Select, primary_key: Sequence[str], cursor: str | None, *, schema: str | None = None
) -> exp.Select:
    """(rows of `source` whose key is in `target`, how many of those the upsert would change) in one query.

    With `source` free of duplicate keys, no match means the upsert is a plain INSERT; the second count is
    count_updates()'s condition (a NULL sum, over no matches, reads as 0).
    """
    on = exp.and_(*(col(k, "t").eq(col(k, "s")) for k in primary_key))
    newer: exp.Expr = exp.true()
    if cursor:
        newer = exp.or_(col(cursor, "t").is_(exp.null()), col(cursor, "s") > col(cursor, "t"))
    changed = exp.Sum(this=exp.If(this=newer, true=exp.Literal.number(1), false=exp.Literal.number(0)))
    return exp.select(exp.Count(this=exp.Star()), changed).from_(source.subquery(ident("s"))).join(table(target, schema, alias="t"), on=on)


def count_updates(
    target: str, source: exp.Select, primary_key: Sequence[str], cursor: str | None, *, schema: str | None = None
) -> exp.Select:
    """How many rows of `source` the upsert will change in `target`: key present and (no cursor or a newer one).

    The same condition as merge()'s WHEN MATCHED, counted before it runs: portable, unlike affected-row counts.
    """
    on = exp.and_(*(col(k, "t").eq(col(k, "s")) for k in primary_key))
    query = exp.select(exp.Count(this=exp.Star())).from_(source.subquery(ident("s"))).join(table(target, schema, alias="t"), on=on)
    if cursor:
        query = query.where(exp.or_(col(cursor, "t").is_(exp.null()), col(cursor, "s") > col(cursor, "t")))
    return query
