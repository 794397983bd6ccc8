"""What differs between warehouses, as data: types, identifier rules, upsert and swap forms."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from engine.schema import ColumnType


@dataclass(frozen=True, slots=True, kw_only=True)
class Dialect:
    """One warehouse's SQL rules; `name` is also the sqlglot dialect."""

    name: str
    types: Mapping[ColumnType, str]  # the type klx creates for each ColumnType, in this dialect's spelling
    max_identifier: int  # bytes; longer names are shortened by identifier(), never cut silently by the server
    # The case the warehouse folds unquoted names to ("upper", "lower"; None: it keeps them as written), which
    # klx stores every name in so that `select id from kl_rudder_x` finds it, as RudderStack stored them
    # (rudder-server's ToProviderCase, rudder-transformer's safeTableName / safeColumnName)
    fold: str | None = None
    parse_json: bool = False  # CAST(text AS <json type>) would store a string: use PARSE_JSON instead
    upsert: str = "merge"  # "merge", or "delete_insert" where MERGE is missing or restricted
    swap: str = "rename"  # full refresh: "rename" (drop + rename in one transaction) or "swap" (ALTER ... SWAP WITH)
    # True: a full refresh's shadow is CREATE TABLE ... LIKE the table ... COPY GRANTS (Snowflake). SWAP WITH swaps the
    # two tables' privilege grants with their contents: a shadow without the table's grants would leave the table,
    # once swapped, without the SELECT a BI or dbt role was granted on it.
    copy_grants: bool = False
    transactional_ddl: bool = True  # False: DDL commits the open transaction, so it runs before BEGIN
    # True: a MERGE answers one row, (rows inserted, rows updated), as Snowflake's does; a load then reads its
    # counts there rather than counting matches before the MERGE and the table's rows after it
    merge_counts: bool = False
    # How rows are compared with a subquery's rows, `(a, b) IN (SELECT a, b ...)`, which some warehouses refuse
    # because a subquery after IN may return one column only: "tuple" (as written); "struct" (BigQuery: the
    # tuple is a STRUCT, and `SELECT AS STRUCT a, b` returns one); "exists" (Redshift: EXISTS (SELECT 1 FROM
    # (SELECT a, b ...) WHERE each column equals the outer row's)
    row_in: str = "tuple"
    # True: the warehouse finds a table, schema or column whatever the case it is asked for in, quoted or not, and
    # keeps the case it was created in (DuckDB): klx looks names up in its catalog the same way, so a table made as
    # KL_rudder_x is the one `table_prefix: kl_` loads, not one that "already exists" when klx creates it.
    names_ignore_case: bool = False
    # Where klx looks a schema up: (schema, table, name column) of a catalog listing every schema. PostgreSQL's
    # information_schema.schemata lists only those the role owns or holds a privilege on: a schema that exists, but
    # where the role lacks USAGE, was taken for missing, and CREATE SCHEMA failed with "permission denied for database".
    schemas: tuple[str, str, str] = ("information_schema", "schemata", "schema_name")

    def identifier(self, name: str) -> str:
        """`name` as this warehouse stores it: case-folded, and shortened with a stable hash when too long."""
        name = self.folded(name)
        encoded = name.encode()
        if len(encoded) <= self.max_identifier:
            return name
        digest = hashlib.sha1(encoded).hexdigest()[:8]
        head = encoded[: self.max_identifier - 9].decode(errors="ignore")  # never split a UTF-8 character
        return f"{head}_{self.folded(digest)}"

    def folded(self, name: str) -> str:
        """`name` in the case this warehouse folds unquoted names to."""
        if self.fold == "upper":
            return name.upper()
        if self.fold == "lower":  # PostgreSQL folds A-Z only: unquoted, PRÉNOM is prÉnom in a UTF-8 database
            return name.translate(_ASCII_LOWER)
        return name


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _types(**names: str) -> Mapping[ColumnType, str]:
    return MappingProxyType({ColumnType[key.upper()]: value for key, value in names.items()})


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect(
            name="duckdb",
            types=_types(boolean="BOOLEAN", bigint="BIGINT", double="DOUBLE", timestamp="TIMESTAMPTZ", text="VARCHAR", json="JSON"),
            max_identifier=255,
            names_ignore_case=True,
        ),
        Dialect(
            name="postgres",
            types=_types(
                boolean="BOOLEAN", bigint="BIGINT", double="DOUBLE PRECISION", timestamp="TIMESTAMPTZ", text="TEXT", json="JSONB"
            ),
            max_identifier=63,  # NAMEDATALEN - 1; PostgreSQL cuts longer names silently
            fold="lower",
            schemas=("pg_catalog", "pg_namespace", "nspname"),
        ),
        Dialect(
            name="snowflake",
            types=_types(
                boolean="BOOLEAN", bigint="BIGINT", double="FLOAT", timestamp="TIMESTAMP_TZ", text="VARCHAR", json="VARIANT"
            ),
            max_identifier=255,
            fold="upper",
            parse_json=True,
            swap="swap",
            copy_grants=True,
            transactional_ddl=False,
            merge_counts=True,  # its MERGE returns "number of rows inserted", "number of rows updated"
        ),
        Dialect(
            name="bigquery",
            types=_types(boolean="BOOL", bigint="INT64", double="FLOAT64", timestamp="TIMESTAMP", text="STRING", json="JSON"),
            max_identifier=300,
            parse_json=True,
            transactional_ddl=False,
            row_in="struct",
        ),
        Dialect(
            name="redshift",
            types=_types(
                boolean="BOOLEAN", bigint="BIGINT", double="DOUBLE PRECISION", timestamp="TIMESTAMPTZ", text="VARCHAR(65535)", json="SUPER"
            ),
            max_identifier=127,
            fold="lower",  # unquoted names, and quoted ones unless enable_case_sensitive_identifier is on
            parse_json=True,
            upsert="delete_insert",  # Redshift's MERGE allows one source row per target row and few clauses
            row_in="exists",  # "table_subquery ... is limited to only one column in its select list" (IN condition)
        ),
        Dialect(
            name="databricks",
            types=_types(boolean="BOOLEAN", bigint="BIGINT", double="DOUBLE", timestamp="TIMESTAMP", text="STRING", json="STRING"),
            max_identifier=255,
            transactional_ddl=False,
        ),
    )
}


def dialect(name: str) -> Dialect:
    """The rules of dialect `name`; KeyError names the known ones."""
    if name not in DIALECTS:
        raise KeyError(f"unknown dialect {name!r}; known: {', '.join(sorted(DIALECTS))}")
    return DIALECTS[name]
