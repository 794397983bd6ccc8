"""PostgreSQL: config keys, connection errors, both upsert forms, and the same simulator sync as DuckDB, row for row."""

from __future__ import annotations

import dataclasses
import os
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest

from engine.config import Config
from engine.destinations import build_destination
from engine.errors import ConfigError, LockedError, WarehouseError
from engine.rows import LOAD_COLUMNS
from engine.run import run
from engine.schema import Column, ColumnType
from engine import sql
from klaviyo_sim import Simulator
from tests.klx_testing import ALL_RESOURCES, SIM_NOW, START_DATE, default_modes, key_of, write_config
from tests.test_sql_destinations import COLUMNS, PROFILES, batch, ts
from tests.warehouses import POSTGRES, open_warehouse, pg_schema, require_postgres  # noqa: F401  (fixture)


def postgres_config(tmp_path: Path, schema: str, resources: dict[str, str], *, base_url: str = "http://127.0.0.1:1",
                    connection: list[str] | None = None) -> Path:
    lines = ["source:", "  api_key: ${KLAVIYO_API_KEY}", f"  start_date: {START_DATE}", f"  base_url: {base_url}",
             "destination:", "  type: postgres", "  table_prefix: kl_", f"  schema: {schema}"]
    lines += connection or ["  host: 127.0.0.1", "  port: 5432", "  user: postgres", "  password: ${PG_PASSWORD}", "  database: test"]
    lines += ["resources:", *(f"  {name}: {mode}" for name, mode in resources.items())]
    path = tmp_path / "postgres.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


ENV = {"KLAVIYO_API_KEY": "pk_test", "PG_PASSWORD": "s3cret-pw"}


def test_password_comes_from_an_environment_variable_and_never_shows(tmp_path: Path, pg_schema: str) -> None:
    config = Config.from_yaml(postgres_config(tmp_path, pg_schema, {"lists": "incremental"}), env=ENV)
    assert "s3cret-pw" not in repr(config.destination)
    dest = build_destination(config.destination)
    try:
        assert dest.read_state("lists") is None
        assert dest.columns_of(sql.state_table("kl_", "postgres")) == {}  # schema created, state table not yet
    finally:
        dest.close()


def test_unset_password_variable_is_a_config_error(tmp_path: Path) -> None:
    path = postgres_config(tmp_path, "x", {"lists": "incremental"})
    with pytest.raises(ConfigError, match=r"postgres.yaml:\d+: destination.password: environment variable PG_PASSWORD is not set"):
        Config.from_yaml(path, env={"KLAVIYO_API_KEY": "pk_test"})


def test_batch_scale_is_one_unless_set_and_a_bad_one_is_a_config_error(tmp_path: Path, pg_schema: str) -> None:
    for extra, scale in (([], 1), (["  batch_scale: 4"], 4)):
        path = postgres_config(tmp_path, pg_schema, {"lists": "incremental"}, connection=[
            "  host: 127.0.0.1", "  port: 5432", "  user: postgres", "  database: test", *extra])
        dest = build_destination(Config.from_yaml(path, env=ENV).destination)
        assert dest.batch_scale == scale
        dest.close()
    path = postgres_config(tmp_path, pg_schema, {"lists": "incremental"}, connection=["  database: test", "  batch_scale: -1"])
    with pytest.raises(ConfigError, match=r"postgres.yaml:\d+: destination.batch_scale: -1 is not a whole number from 1 to 64"):
        build_destination(Config.from_yaml(path, env=ENV).destination)


def test_blank_schema_is_a_config_error_naming_its_line(tmp_path: Path) -> None:
    # It reached CREATE SCHEMA "" and failed there as a warehouse error (exit 4) naming neither file nor key.
    path = postgres_config(tmp_path, '""', {"lists": "incremental"})
    with pytest.raises(ConfigError) as raised:
        build_destination(Config.from_yaml(path, env=ENV).destination)
    assert str(raised.value) == f"{path}:8: destination.schema: '' names no schema; give one, or leave the key out for public"


@pytest.mark.parametrize(("line", "message"), [
    ("  port: 99999", "destination.port: 99999 is not a port number from 1 to 65535"),
    ("  port: 0", "destination.port: 0 is not a port number from 1 to 65535"),
    ("  port: true", "destination.port: True is not a port number from 1 to 65535"),
    ("  sslmode: requir", "destination.sslmode: 'requir' is not one of disable, allow, prefer, require, verify-ca, verify-full"),
])
def test_a_port_or_sslmode_libpq_would_refuse_is_a_config_error_naming_its_line(tmp_path: Path, line: str, message: str) -> None:
    # libpq refused them at connect time: exit 4, "invalid port number" / "invalid sslmode value", no file:line.
    path = postgres_config(tmp_path, "x", {"lists": "incremental"}, connection=["  host: 127.0.0.1", "  database: test", line])
    with pytest.raises(ConfigError) as raised:
        build_destination(Config.from_yaml(path, env=ENV).destination)
    assert str(raised.value) == f"{path}:11: {message}"


def test_dsn_connects_too(tmp_path: Path, pg_schema: str) -> None:
    path = postgres_config(tmp_path, pg_schema, {"lists": "incremental"},
                           connection=["  dsn: postgresql://postgres@127.0.0.1:5432/test"])
    dest = build_destination(Config.from_yaml(path, env=ENV).destination)
    dest.close()


def test_dsn_beside_the_parts_it_stands_for_is_a_config_error(tmp_path: Path) -> None:
    # libpq would let host override the dsn's host without a word: which server was meant is unknown.
    path = postgres_config(tmp_path, "x", {"lists": "incremental"},
                           connection=["  dsn: postgresql://postgres@127.0.0.1:5432/test", "  host: localhost"])
    with pytest.raises(ConfigError) as raised:
        build_destination(Config.from_yaml(path, env=ENV).destination)
    assert str(raised.value) == (
        f"{path}:10: destination.host: given with destination.dsn; say where to connect one way, "
        "a dsn or host, port, user, password and database"
    )


def test_unreachable_server_is_a_warehouse_error_without_the_password(tmp_path: Path) -> None:
    require_postgres()
    path = postgres_config(tmp_path, "x", {"lists": "incremental"}, connection=[
        "  host: 127.0.0.1", "  port: 1", "  user: postgres", "  password: ${PG_PASSWORD}", "  database: test", "  connect_timeout: 2"])
    with pytest.raises(WarehouseError) as raised:
        build_destination(Config.from_yaml(path, env=ENV).destination)
    assert str(raised.value).startswith("cannot connect to PostgreSQL at 127.0.0.1:1/test: ")
    assert "s3cret-pw" not in str(raised.value) + (raised.value.hint or "")


def test_missing_database_is_a_config_error(tmp_path: Path) -> None:
    path = postgres_config(tmp_path, "x", {"lists": "incremental"}, connection=["  host: 127.0.0.1"])
    with pytest.raises(ConfigError, match="destination.database: required for 'postgres' \\(or give a dsn\\)"):
        build_destination(Config.from_yaml(path, env=ENV).destination)


def test_servers_before_15_upsert_with_delete_and_insert(tmp_path: Path, pg_schema: str) -> None:
    wh = open_warehouse("postgres", tmp_path, pg_schema)
    wh.dest.upsert_form = "delete_insert"  # what a PostgreSQL 14 server gets
    for rows in ([{"id": "a", "updated": ts(2), "email": "new"}], [{"id": "a", "updated": ts(1), "email": "stale"},
                                                                      {"id": "b", "updated": ts(1), "email": "b"}]):
        load = wh.dest.begin("profiles", PROFILES, replace=False)
        load.write(batch(COLUMNS, rows), COLUMNS, {"n": len(rows)})
        load.finish({"n": len(rows)})
    assert wh.query("select id, email from kl_profiles order by id") == [{"id": "a", "email": "new"}, {"id": "b", "email": "b"}]
    assert wh.dest.read_state("profiles") == {"n": 2}
    wh.dest.close()


def test_a_batch_the_copy_refuses_fails_in_one_line_and_leaves_rows_and_state_as_they_were(tmp_path: Path, pg_schema: str) -> None:
    wh = open_warehouse("postgres", tmp_path, pg_schema)
    load = wh.dest.begin("profiles", PROFILES, replace=False)
    load.write(batch(COLUMNS, [{"id": "a", "updated": ts(1), "email": "kept"}]), COLUMNS, {"n": 1})
    with pytest.raises(WarehouseError) as raised:  # PostgreSQL's text holds no NUL character
        load.write(batch(COLUMNS, [{"id": "a", "updated": ts(2), "email": "nul\x00"}, {"id": "b", "updated": ts(2), "email": "b"}]),
                   COLUMNS, {"n": 2})
    assert str(raised.value) == f'COPY into the staging table of {pg_schema} failed: invalid byte sequence for encoding "UTF8": 0x00'
    assert wh.query("select id, email from kl_profiles order by id") == [{"id": "a", "email": "kept"}]
    assert wh.dest.read_state("profiles") == {"n": 1}
    wh.dest.close()


def test_long_table_names_are_shortened_before_postgres_cuts_them(tmp_path: Path, pg_schema: str) -> None:
    wh = open_warehouse("postgres", tmp_path, pg_schema, prefix="a_rather_long_prefix_")
    spec = PROFILES.__class__(name="a_rather_long_prefix_segments_profiles_with_a_much_longer_name_than_63", primary_key=("id",), cursor=None)
    for replace in (False, True):
        load = wh.dest.begin("s", spec, replace=replace)
        load.write(batch(COLUMNS, [{"id": "a", "updated": ts(1), "email": None}]), COLUMNS, {})
        load.finish({})
    (row,) = wh.query("select table_name from information_schema.tables where table_schema = current_schema() and table_name like '%segments%'")
    assert len(row["table_name"]) == 63 and row["table_name"] == sql.rules("postgres").identifier(spec.name)
    wh.dest.close()


# The same sync into DuckDB and PostgreSQL


def _normalised(rows: list[dict[str, Any]], json_columns: set[str]) -> dict[tuple, dict[str, Any]]:
    out = {}
    for row in rows:
        values = {k: v for k, v in row.items() if k not in LOAD_COLUMNS}
        for name in json_columns & values.keys():
            if isinstance(values[name], str):
                values[name] = json.loads(values[name])
        out[tuple(str(values[k]) for k in ("segment_id", "id") if k in values)] = values
    return out


def _compare(duck: Any, pg: Any, resource: str) -> None:
    table = f"kl_rudder_{resource}"
    json_columns = {n for n, t in duck.dest.columns_of(table).items() if sql.family(t) is ColumnType.JSON}
    left = _normalised(duck.query(f'select * from "{table}"'), json_columns)
    right = _normalised(pg.query(f'select * from "{table}"'), json_columns)
    assert left.keys() == right.keys(), resource
    assert left == right, resource
    assert duck.types(table).keys() == pg.types(table).keys(), resource


def test_same_simulator_sync_lands_identical_rows_in_duckdb_and_postgres(tmp_path: Path, pg_schema: str) -> None:
    require_postgres()
    from tests.warehouses import Warehouse

    with Simulator(seed=5, scale=0.1, now=SIM_NOW) as sim:
        env = {**ENV, "KLAVIYO_API_KEY": sim.api_key}
        modes = default_modes()
        duck_path = write_config(tmp_path, modes, base_url=sim.url, database=tmp_path / "klx.duckdb")
        pg_path = postgres_config(tmp_path, pg_schema, modes, base_url=sim.url)
        pg_path = pg_path.rename(tmp_path / "pg.yaml")
        pg_path.write_text(pg_path.read_text().replace("table_prefix: kl_", "table_prefix: kl_"))
        for path in (duck_path, pg_path):
            run(Config.from_yaml(path, env=env), now=SIM_NOW, sleep=lambda s: None)
        changed = {r: sim.mutate(r, update=3, create=2) for r in ("profiles", "campaigns", "lists")}
        later = sim.clock() + timedelta(minutes=5)
        for path in (duck_path, pg_path):
            run(Config.from_yaml(path, env=env), now=later, sleep=lambda s: None)
        duck = Warehouse("duckdb", build_destination(Config.from_yaml(duck_path, env=env).destination))
        pg = Warehouse("postgres", build_destination(Config.from_yaml(pg_path, env=env).destination))
        try:
            for resource in ALL_RESOURCES:
                _compare(duck, pg, resource)
            for resource, change in changed.items():
                ids = {r["id"] for r in pg.query(f"select id from kl_rudder_{resource}")}
                assert set(change["created"]) <= ids, resource
                assert ids == {key_of(resource, t)[0] for t in sim.truth(resource, START_DATE)}, resource
        finally:
            duck.dest.close()
            pg.dest.close()


def test_a_role_that_cannot_create_schemas_loads_into_an_existing_one(tmp_path: Path, pg_schema: str) -> None:
    import uuid

    import psycopg

    from engine.destinations.postgres import PostgresDestination

    role = f"klx_loader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{pg_schema}"')
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'REVOKE CREATE ON DATABASE test FROM "{role}"')
        admin.execute(f'GRANT USAGE, CREATE ON SCHEMA "{pg_schema}" TO "{role}"')
    try:
        dest = PostgresDestination(connection={**POSTGRES, "user": role}, dsn=None, schema=pg_schema, table_prefix="kl_")
        load = dest.begin("profiles", PROFILES, replace=False)
        load.write(batch(COLUMNS, [{"id": "a", "updated": ts(1), "email": None}]), COLUMNS, {})
        load.finish({})
        assert dest.count_rows("kl_profiles") == 1
        dest.close()
    finally:
        with psycopg.connect(**POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{pg_schema}" CASCADE')
            admin.execute(f'DROP ROLE "{role}"')


def test_state_reset_is_refused_while_another_config_file_loads_the_same_schema_and_prefix(tmp_path: Path, pg_schema: str, capsys) -> None:
    # Only the reset's own config file was locked: a run of another config loading these tables saved its cursor at
    # its next commit, over the reset, and the reset said "cursor reset" all the same.
    from engine.cli import main

    first = Config.from_yaml(postgres_config(tmp_path, pg_schema, {"lists": "incremental"}), env=ENV)
    (tmp_path / "other").mkdir()
    second = postgres_config(tmp_path / "other", pg_schema, {"lists": "incremental"},
                             connection=["  host: 127.0.0.1", "  user: postgres", "  database: test"])
    holder = build_destination(first.destination)
    try:
        holder.claim()  # a run of the first config, loading now
        assert main(["state", "reset", str(second)]) == 5
        assert f"schema {pg_schema} with table prefix 'kl_' is being loaded by another klx run" in capsys.readouterr().err
    finally:
        holder.close()


def test_a_second_run_into_the_same_schema_and_prefix_is_refused_whatever_its_config_file(tmp_path: Path, pg_schema: str) -> None:
    # The config's file lock covers one config file. Two (on two machines) loading one schema and prefix both
    # wrote the same tables, their full refreshes one shadow table: 31,948 rows for 30,000 keys, never repaired.
    with Simulator(seed=0, scale=0.1, now=SIM_NOW) as sim:
        first = Config.from_yaml(postgres_config(tmp_path, pg_schema, {"lists": "incremental"}, base_url=sim.url), env={**ENV, "KLAVIYO_API_KEY": sim.api_key})
        (tmp_path / "other").mkdir()
        second = Config.from_yaml(postgres_config(tmp_path / "other", pg_schema, {"lists": "full_refresh"}, base_url=sim.url),
                                  env={**ENV, "KLAVIYO_API_KEY": sim.api_key})
        holder = build_destination(first.destination)
        try:
            holder.claim()  # a run of the first config, loading now
            requests_before = len(sim.request_log)
            with pytest.raises(LockedError) as refused:
                run(second, now=SIM_NOW)
            assert refused.value.exit_code == 5 and f"schema {pg_schema} with table prefix 'kl_'" in str(refused.value)
            assert "PostgreSQL session" in str(refused.value) and len(sim.request_log) == requests_before  # nothing read
            assert holder.columns_of("kl_rudder_lists") == {}  # nothing written
            # Another prefix in the same schema is another set of tables: not held.
            other = build_destination(dataclasses.replace(second.destination, table_prefix="kl2_"))
            other.claim()
            other.close()
        finally:
            holder.close()
        for _ in range(50):  # the server ends the closed session (and its lock) a moment later
            try:
                assert run(second, now=SIM_NOW).exit_code == 0
                break
            except LockedError:
                time.sleep(0.1)
        else:
            raise AssertionError("the lock outlived its session")


# A value longer than an adopted VARCHAR(n) column allows


@pytest.mark.parametrize("how", ["matching", "gathering", "full refresh"])
def test_a_value_too_long_for_an_adopted_varchar_names_the_stream_table_column_and_fix(
    tmp_path: Path, pg_schema: str, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    # PostgreSQL said only "value too long for type character varying(5)": which of the table's columns, and of
    # which stream's table, the user had to find out alone.
    from engine.destinations.postgres import PostgresDestination

    if how == "gathering":
        monkeypatch.setattr(PostgresDestination, "gather_from", 0)
    wh = open_warehouse("postgres", tmp_path, pg_schema)
    wh.run("create table kl_profiles (id varchar(512), updated timestamp, email varchar(5))")
    wh.run("insert into kl_profiles values ('rs', '2024-01-01', 'rs@x')")
    load = wh.dest.begin("profiles", PROFILES, replace=False)
    load.write(batch(COLUMNS, [{"id": "a", "updated": ts(1), "email": "a@x"}]), COLUMNS, {"n": 1})
    load.finish({"n": 1})
    load = wh.dest.begin("profiles", PROFILES, replace=how == "full refresh")
    with pytest.raises(WarehouseError) as raised:
        load.write(batch(COLUMNS, [{"id": "b", "updated": ts(2), "email": "b@x"}, {"id": "c", "updated": ts(2), "email": "much-too-long@example.com"}]),
                   COLUMNS, {"n": 2})
    load.abort()
    assert str(raised.value) == (
        f"stream profiles: column 'email' of table {pg_schema}.kl_profiles is VARCHAR(5), too short for a value of 25 characters; "
        "nothing of the batch was written\n"
        f'  hint: widen the column to text: ALTER TABLE "{pg_schema}"."kl_profiles" ALTER COLUMN "email" SET DATA TYPE TEXT '
        'USING CAST("email" AS TEXT); then sync again'
    )
    assert raised.value.exit_code == 4
    assert wh.query("select id, email from kl_profiles order by id") == [{"id": "a", "email": "a@x"}, {"id": "rs", "email": "rs@x"}]
    assert wh.dest.read_state("profiles") == {"n": 1}
    assert [r["table_name"] for r in wh.query("select table_name from information_schema.tables where table_schema = current_schema() order by 1")] == [
        "kl_klx_state", "kl_profiles"]  # no shadow or pending table left
    wh.run(raised.value.hint.split("text: ", 1)[1].split("; then", 1)[0])  # the fix it gives works
    load = wh.dest.begin("profiles", PROFILES, replace=False)
    load.write(batch(COLUMNS, [{"id": "c", "updated": ts(2), "email": "much-too-long@example.com"}]), COLUMNS, {"n": 2})
    load.finish({"n": 2})
    assert wh.query("select email from kl_profiles where id = 'c'") == [{"email": "much-too-long@example.com"}]
    wh.dest.close()


def test_values_too_long_for_several_columns_name_each_column_and_its_limit(tmp_path: Path, pg_schema: str) -> None:
    # An integer loaded into a CHAR(n) column is stored as its digits: measured that way.
    wh = open_warehouse("postgres", tmp_path, pg_schema)
    wh.run("create table kl_profiles (id varchar(3), updated varchar(30), email varchar(64), score char(2))")
    columns = [*COLUMNS, Column(name="score", type=ColumnType.BIGINT)]
    load = wh.dest.begin("profiles", PROFILES, replace=False)
    with pytest.raises(WarehouseError) as raised:
        load.write(batch(columns, [{"id": "abcd", "updated": ts(2), "email": "a@x", "score": 12345}]), columns, {"n": 1})
    load.abort()
    assert raised.value.message == (
        f"stream profiles: columns of table {pg_schema}.kl_profiles too short for the values loaded: 'id' VARCHAR(3) (a value of 4 characters), "
        "'score' CHAR(2) (a value of 5 characters); nothing of the batch was written"
    )
    assert raised.value.hint.count("ALTER TABLE") == 2
    assert wh.query("select count(*) as n from kl_profiles") == [{"n": 0}]


def test_klx_run_into_a_too_short_adopted_column_exits_4_with_one_line_naming_stream_table_and_column(
    tmp_path: Path, pg_schema: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.cli import main

    with Simulator(seed=0, scale=0.05, now=SIM_NOW) as sim:
        path = postgres_config(tmp_path, pg_schema, {"lists": "incremental"}, base_url=sim.url)
        wh = open_warehouse("postgres", tmp_path, pg_schema)
        wh.run("create table kl_rudder_lists (id varchar(512), name varchar(3), updated timestamp)")
        monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
        monkeypatch.setenv("PG_PASSWORD", "")
        monkeypatch.chdir(tmp_path)
        path.write_text(path.read_text().replace("  password: ${PG_PASSWORD}\n", ""))
        assert main(["run", str(path)]) == 4
    err = capsys.readouterr().err.splitlines()
    [line] = [text for text in err if text.startswith("error:")]
    assert line.startswith(f"error: stream lists failed: column 'name' of table {pg_schema}.kl_rudder_lists is VARCHAR(3), too short for a value of ")
    assert line.endswith(
        f'nothing of the batch was written (hint: widen the column to text: ALTER TABLE "{pg_schema}"."kl_rudder_lists" '
        'ALTER COLUMN "name" SET DATA TYPE TEXT USING CAST("name" AS TEXT); then sync again)'
    )
    assert "Traceback" not in "\n".join(err)
    assert wh.query("select count(*) as n from kl_rudder_lists") == [{"n": 0}]
    assert wh.dest.read_state("lists") is None
    wh.dest.close()


# Upper case in destination.schema and table_prefix: PostgreSQL folds unquoted names to lower case, and so does klx


def _schemas_like(name: str) -> list[str]:
    import psycopg

    with psycopg.connect(**POSTGRES, autocommit=True) as con:
        return [row[0] for row in con.execute("select nspname from pg_namespace where lower(nspname) = lower(%s) order by 1", [name])]


def _drop_schema(name: str) -> None:
    import psycopg

    with psycopg.connect(**POSTGRES, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def written(pg_schema: str) -> Iterator[str]:
    """pg_schema with upper case in it, as a config may write it; the schema of that exact name is dropped after the test."""
    name = pg_schema.replace("klx", "Klx", 1)
    yield name
    _drop_schema(name)


def test_names_fold_to_lower_case_as_postgres_folds_unquoted_ones() -> None:
    assert sql.rules("postgres").identifier("KL_rudder_Lists") == "kl_rudder_lists"
    assert sql.rules("postgres").identifier("PRÉNOM") == "prÉnom"  # A-Z only, as PostgreSQL folds them
    assert sql.rules("snowflake").identifier("kl_rudder_lists") == "KL_RUDDER_LISTS"
    assert sql.rules("duckdb").identifier("KL_rudder_Lists") == "KL_rudder_Lists"  # DuckDB matches names in any case


def test_upper_case_schema_and_prefix_adopt_the_lower_case_tables_rudderstack_made(tmp_path: Path, pg_schema: str, written: str) -> None:
    # `schema: Klaviyo` made a quoted schema "Klaviyo": `select * from klaviyo.x` in psql did not find it, and the
    # schema RudderStack had made (klaviyo: rudder-server folds the namespace) was not the one loaded.
    wh = open_warehouse("postgres", tmp_path, pg_schema)
    wh.run("create table kl_rudder_lists (id text, updated timestamp, attributes_name text)")
    wh.run("insert into kl_rudder_lists values ('rudderstack-row', '2020-01-01', 'kept')")
    with Simulator(seed=0, scale=0.05, now=SIM_NOW) as sim:
        path = postgres_config(tmp_path, written, {"lists": "incremental"}, base_url=sim.url)
        path.write_text(path.read_text().replace("table_prefix: kl_", "table_prefix: KL_"))
        summary = run(Config.from_yaml(path, env={**ENV, "KLAVIYO_API_KEY": sim.api_key}), now=SIM_NOW)
        assert summary.exit_code == 0
        truth = {r["id"] for r in sim.truth("lists", START_DATE)}
    assert _schemas_like(pg_schema) == [pg_schema]  # no "Klx_test_…" beside it
    rows = wh.query(f"select id, attributes_name from {pg_schema}.kl_rudder_lists")  # unquoted, as a user types it
    assert {r["id"] for r in rows} == truth | {"rudderstack-row"}
    assert [r["attributes_name"] for r in rows if r["id"] == "rudderstack-row"] == ["kept"]
    assert wh.dest.read_state("lists") is not None  # in kl_klx_state
    wh.dest.close()


def test_a_schema_an_earlier_klx_made_as_written_is_loaded_on_with_a_warning(
    tmp_path: Path, pg_schema: str, written: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from engine.dialects import DIALECTS

    with Simulator(seed=0, scale=0.05, now=SIM_NOW) as sim:
        config = Config.from_yaml(postgres_config(tmp_path, written, {"lists": "incremental"}, base_url=sim.url),
                                  env={**ENV, "KLAVIYO_API_KEY": sim.api_key})
        with monkeypatch.context() as before:  # klx before it folded names: "Klx_test_…", quoted
            before.setitem(DIALECTS, "postgres", dataclasses.replace(DIALECTS["postgres"], fold=None))
            assert run(config, now=SIM_NOW).exit_code == 0
        assert _schemas_like(pg_schema) == [written]
        changed = sim.mutate("lists", update=1, create=2)
        requests = len(sim.request_log)
        with caplog.at_level("WARNING", logger="klx"):
            assert run(config, now=sim.clock() + timedelta(minutes=5)).exit_code == 0
        assert len(sim.request_log) - requests == 1  # one page: read from the saved cursor, not from start_date
        truth = {r["id"] for r in sim.truth("lists", START_DATE)}
    assert _schemas_like(pg_schema) == [written]  # no klx_test_… made beside it
    [warning] = [record.getMessage() for record in caplog.records if record.name == "klx.postgres"]
    assert f"destination.schema: {written!r}: loading schema \"{written}\", named as written (by an earlier klx)" in warning
    assert warning.endswith(f'ALTER SCHEMA "{written}" RENAME TO {pg_schema} lets them not')
    dest = build_destination(config.destination)
    assert dest.schema == written
    rows = dest.run_sql(sql.render(sql.exp.select("id").from_(sql.table("kl_rudder_lists", written)), "postgres"), [])
    assert {r[0] for r in rows} == truth and set(changed["created"]) <= truth
    dest.close()


def test_a_schema_named_both_as_written_and_folded_is_refused_naming_its_line(tmp_path: Path, pg_schema: str, written: str) -> None:
    import psycopg

    with psycopg.connect(**POSTGRES, autocommit=True) as con:
        for name in (pg_schema, written):
            con.execute(f'CREATE SCHEMA "{name}"')
    path = postgres_config(tmp_path, written, {"lists": "incremental"})
    with pytest.raises(WarehouseError) as raised:
        build_destination(Config.from_yaml(path, env=ENV).destination)
    assert str(raised.value) == (
        f"{path}:8: destination.schema: {written!r} names two schemas: {pg_schema}, as PostgreSQL folds the unquoted name, "
        f'and "{written}", as written (what an earlier klx loaded)\n'
        f'  hint: write schema: {pg_schema} to load {pg_schema}; to load "{written}", rename the other first '
        f"(ALTER SCHEMA {pg_schema} RENAME TO {pg_schema}_old)"
    )
    assert raised.value.exit_code == 4


def test_a_prefix_whose_tables_an_earlier_klx_made_as_written_is_refused_before_anything_is_read(
    tmp_path: Path, pg_schema: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.cli import main
    from engine.dialects import DIALECTS

    with Simulator(seed=0, scale=0.05, now=SIM_NOW) as sim:
        path = postgres_config(tmp_path, pg_schema, {"lists": "incremental"}, base_url=sim.url,
                               connection=["  host: 127.0.0.1", "  user: postgres", "  database: test"])
        path.write_text(path.read_text().replace("table_prefix: kl_", "table_prefix: KL_"))
        monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
        with monkeypatch.context() as before:  # klx before it folded names: "KL_rudder_lists", "KL_klx_state"
            before.setitem(DIALECTS, "postgres", dataclasses.replace(DIALECTS["postgres"], fold=None))
            assert main(["run", str(path)]) == 0
        capsys.readouterr()
        requests = len(sim.request_log)
        assert main(["run", str(path)]) == 4
        assert len(sim.request_log) == requests
    assert capsys.readouterr().err == (
        f"error: {path}:7: destination.table_prefix: 'KL_': schema {pg_schema} holds the tables an earlier klx made with the prefix "
        f'as written ("KL_klx_state", …); klx now names them in lower case, as PostgreSQL folds unquoted names (kl_klx_state, …), '
        "and would sync every stream anew beside them\n"
        f'  hint: rename each of them to its lower-case name, e.g. ALTER TABLE "{pg_schema}"."KL_klx_state" RENAME TO kl_klx_state '
        '(docs/migrating-from-rudderstack.md, "Upper case in schema or table_prefix", writes them all), then run again\n'
    )
    wh = open_warehouse("postgres", tmp_path, pg_schema)
    assert [r["table_name"] for r in wh.query("select table_name from information_schema.tables where table_schema = current_schema() order by 1")] == [
        "KL_klx_runs", "KL_klx_state", "KL_rudder_lists"]
    wh.dest.close()


def test_a_full_refresh_keeps_what_other_roles_were_granted_on_the_table(tmp_path: Path, pg_schema: str) -> None:
    # A full refresh drops the table and renames its shadow: a BI role's SELECT on an adopted RudderStack table
    # went with the first one, and its dashboards failed with "permission denied" the next morning.
    import uuid

    import psycopg

    from tests.test_sql_destinations import load

    reader, editor = f"klx_bi_{uuid.uuid4().hex[:8]}", f"klx_etl_{uuid.uuid4().hex[:8]}"
    wh = open_warehouse("postgres", tmp_path, pg_schema)
    with psycopg.connect(**POSTGRES, autocommit=True) as con:
        con.execute(f'CREATE ROLE "{reader}"')
        con.execute(f'CREATE ROLE "{editor}"')
    try:
        load(wh, [{"id": "a", "updated": ts(1), "email": "a@x"}])
        with psycopg.connect(**POSTGRES, autocommit=True) as con:
            con.execute(f'GRANT USAGE ON SCHEMA "{pg_schema}" TO "{reader}"')
            con.execute(f'GRANT SELECT ON "{pg_schema}".kl_profiles TO "{reader}"')
            con.execute(f'GRANT SELECT, INSERT ON "{pg_schema}".kl_profiles TO "{editor}" WITH GRANT OPTION')
            con.execute(f'GRANT SELECT ON "{pg_schema}".kl_profiles TO PUBLIC')
        load(wh, [{"id": "b", "updated": ts(2), "email": "b@x"}], replace=True)
        with psycopg.connect(**POSTGRES, autocommit=True) as con:
            table = f'"{pg_schema}".kl_profiles'
            granted = con.execute(
                "SELECT grantee, privilege_type, is_grantable FROM information_schema.role_table_grants "
                "WHERE table_schema = %s AND table_name = 'kl_profiles' AND grantee <> current_user ORDER BY 1, 2",
                [pg_schema],
            ).fetchall()
            assert con.execute(f"SELECT id FROM {table}").fetchall() == [("b",)]
        assert sorted(granted) == sorted([("PUBLIC", "SELECT", "NO"), (editor, "INSERT", "YES"), (editor, "SELECT", "YES"), (reader, "SELECT", "NO")])
    finally:
        wh.dest.close()
        with psycopg.connect(**POSTGRES, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{pg_schema}" CASCADE')
            con.execute(f'DROP ROLE IF EXISTS "{reader}"')
            con.execute(f'DROP ROLE IF EXISTS "{editor}"')


# Another session's lock on a table klx loads: a BI query, or a transaction left open


def _holding(pg_schema: str, statement: str, application: str = "klx_test_bi") -> Any:
    """Another session, left in its transaction after `statement` (run in pg_schema): it holds the statement's locks until closed."""
    import psycopg

    con = psycopg.connect(**POSTGRES, application_name=application)
    con.execute(f'SET search_path TO "{pg_schema}"')
    con.execute(statement)
    return con


def _lock_wait_message(kind: str, pg_schema: str, table: str, seconds: int, pid: int) -> str:
    return (
        rf"{kind} on table {pg_schema}\.{table} gave up after waiting {seconds} s \(lock_timeout\) for a lock on the table held by "
        rf"session {pid} \(user postgres, klx_test_bi, 127\.0\.0\.1, idle in transaction, since "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)"
    )


def test_a_full_refresh_whose_swap_another_session_blocks_fails_after_lock_timeout_naming_that_session(tmp_path: Path, pg_schema: str) -> None:
    # klx waited for the lock as long as the other session held it (a dashboard's open transaction: hours), and
    # every query on the table queued behind its DROP meanwhile; SIGTERM did not end it either.
    import re

    from engine.destinations.postgres import PostgresDestination
    from tests.test_sql_destinations import load

    wh = open_warehouse("postgres", tmp_path, pg_schema)
    load(wh, [{"id": "a", "updated": ts(1), "email": "kept"}], state={"n": 1})
    dest = PostgresDestination(connection=dict(POSTGRES), dsn=None, schema=pg_schema, table_prefix="kl_", lock_timeout=1)
    holder = _holding(pg_schema, "SELECT count(*) FROM kl_profiles")
    try:
        load_ = dest.begin("profiles", PROFILES, replace=True)
        load_.write(batch(COLUMNS, [{"id": "b", "updated": ts(2), "email": "new"}]), COLUMNS, None)
        with pytest.raises(WarehouseError) as raised:
            load_.finish({"n": 2})
        load_.abort()
        assert re.fullmatch(_lock_wait_message("SWAP IN", pg_schema, "kl_profiles", 1, holder.info.backend_pid), raised.value.message), raised.value.message
        assert raised.value.hint == (
            "a long query or an open transaction (idle in transaction) blocks the statement; wait for it to end or end it, "
            "or raise destination.lock_timeout, then sync again"
        )
    finally:
        holder.close()
        dest.close()
    assert wh.query("select id, email from kl_profiles") == [{"id": "a", "email": "kept"}]
    assert wh.dest.read_state("profiles") == {"n": 1}
    assert [r["table_name"] for r in wh.query("select table_name from information_schema.tables where table_schema = current_schema() order by 1")] == [
        "kl_klx_state", "kl_profiles"]  # the shadow dropped
    wh.dest.close()


def test_klx_run_blocked_by_a_lock_on_its_table_exits_4_with_one_line_and_the_next_run_loads(
    tmp_path: Path, pg_schema: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    from engine.cli import main

    with Simulator(seed=0, scale=0.05, now=SIM_NOW) as sim:
        path = postgres_config(tmp_path, pg_schema, {"lists": "incremental"}, base_url=sim.url,
                               connection=["  host: 127.0.0.1", "  user: postgres", "  database: test", "  lock_timeout: 1"])
        monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
        assert main(["run", str(path)]) == 0
        wh = open_warehouse("postgres", tmp_path, pg_schema)
        saved = wh.dest.read_state("lists")
        changed = sim.mutate("lists", update=2, create=1)
        holder = _holding(pg_schema, "LOCK TABLE kl_rudder_lists IN SHARE MODE")  # (a DBA's maintenance, say)
        pid = holder.info.backend_pid
        capsys.readouterr()
        try:
            assert main(["run", str(path)]) == 4
        finally:
            holder.close()
        err = capsys.readouterr().err
        [line] = [text for text in err.splitlines() if text.startswith("error:")]
        assert re.fullmatch(rf"error: stream lists failed: {_lock_wait_message('MERGE', pg_schema, 'kl_rudder_lists', 1, pid)} \(hint: .*\)", line), line
        assert "Traceback" not in err
        assert wh.dest.read_state("lists") == saved  # nothing of the batch committed
        assert main(["run", str(path)]) == 0  # the lock gone, the next run loads what changed
        rows = {r["id"]: r["updated"].isoformat() for r in wh.query("select id, updated from kl_rudder_lists")}
        truth = {r["id"]: r["cursor"] for r in sim.truth("lists", START_DATE)}
    assert rows == truth and set(changed["created"]) <= set(rows)
    wh.dest.close()


def test_a_session_waits_for_locks_at_most_a_minute_unless_the_config_or_the_role_says_otherwise(tmp_path: Path, pg_schema: str) -> None:
    # PostgreSQL's default lock_timeout is 0: wait for ever.
    import uuid

    import psycopg

    from engine.destinations.postgres import PostgresDestination

    def lock_timeout(user: str = "postgres", **options: Any) -> str:
        dest = PostgresDestination(connection={**POSTGRES, "user": user}, dsn=None, schema=pg_schema, table_prefix="kl_", **options)
        try:
            [(value,)] = dest.run_sql("SHOW lock_timeout", [])
            return value
        finally:
            dest.close()

    role = f"klx_loader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f"ALTER ROLE \"{role}\" SET lock_timeout = '5s'")
        admin.execute(f'CREATE SCHEMA "{pg_schema}"')
        admin.execute(f'GRANT USAGE ON SCHEMA "{pg_schema}" TO "{role}"')
    try:
        assert lock_timeout() == "1min"
        assert lock_timeout(lock_timeout=7) == "7s"
        assert lock_timeout(lock_timeout=0) == "0"
        assert lock_timeout(role) == "5s"  # the DBA's setting for klx's role stands
        assert lock_timeout(role, lock_timeout=9) == "9s"
    finally:
        with psycopg.connect(**POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{pg_schema}" CASCADE')
            admin.execute(f'DROP ROLE "{role}"')


def test_a_lock_timeout_that_is_not_a_number_of_seconds_is_a_config_error_naming_its_line(tmp_path: Path) -> None:
    for value, message in (("-1", "-1 is not a number of seconds (0: wait without limit)"), ("soon", "must be a number")):
        path = postgres_config(tmp_path, "x", {"lists": "incremental"}, connection=["  host: 127.0.0.1", "  database: test", f"  lock_timeout: {value}"])
        with pytest.raises(ConfigError) as raised:
            build_destination(Config.from_yaml(path, env=ENV).destination)
        assert str(raised.value) == f"{path}:11: destination.lock_timeout: {message}"


def test_a_role_without_usage_on_an_existing_schema_is_told_so_not_that_it_cannot_create_one(
    tmp_path: Path, pg_schema: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # information_schema.schemata lists only schemas the role holds a privilege on: klx took the schema for missing,
    # and said "CREATE SCHEMA ... permission denied for database test" (granting CREATE on the database then gave
    # "schema already exists").
    import uuid

    import psycopg

    from engine.cli import main

    role = f"klx_loader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{pg_schema}"')
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        with Simulator(seed=0, scale=0.05, now=SIM_NOW) as sim:
            path = postgres_config(tmp_path, pg_schema, {"lists": "incremental"}, base_url=sim.url,
                                   connection=["  host: 127.0.0.1", f"  user: {role}", "  database: test"])
            monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
            assert main(["run", str(path)]) == 4
            assert sim.request_log == []  # refused before reading anything
        err = capsys.readouterr().err
        assert f"error: stream lists failed: CREATE TABLE on table {pg_schema}.kl_klx_state failed: permission denied for schema {pg_schema}\n" in err
        assert "CREATE SCHEMA" not in err and "Traceback" not in err
    finally:
        with psycopg.connect(**POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP ROLE "{role}"')


def test_a_table_the_role_holds_no_privilege_on_fails_its_stream_before_reading_naming_the_grant(
    tmp_path: Path, pg_schema: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # information_schema lists only the tables a role may use: klx took the table for missing, read the whole stream
    # from start_date, then failed with 'CREATE TABLE ... failed: relation "kl_rudder_metrics" already exists'.
    import uuid

    import psycopg

    from engine.cli import main

    role = f"klx_loader_{uuid.uuid4().hex[:8]}"
    wh = open_warehouse("postgres", tmp_path, pg_schema)
    wh.run("create table kl_rudder_metrics (id text, name text)")  # made by another role (a DBA, RudderStack)
    wh.run("insert into kl_rudder_metrics values ('m', 'kept')")
    with psycopg.connect(**POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'GRANT USAGE, CREATE ON SCHEMA "{pg_schema}" TO "{role}"')
    try:
        with Simulator(seed=0, scale=0.05, now=SIM_NOW) as sim:
            path = postgres_config(tmp_path, pg_schema, {"lists": "incremental", "metrics": "full_refresh"}, base_url=sim.url,
                                   connection=["  host: 127.0.0.1", f"  user: {role}", "  database: test"])
            monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
            assert main(["run", str(path)]) == 4
            assert not [r for r in sim.request_log if "/api/metrics" in str(r)]  # nothing read for it
            lists = {r["id"] for r in sim.truth("lists", START_DATE)}
        err = capsys.readouterr().err
        [line] = [text for text in err.splitlines() if text.startswith("error:")]
        assert line == (
            f"error: stream metrics failed: role {role} holds no privilege on table {pg_schema}.kl_rudder_metrics, which exists: "
            f'klx can neither read nor load it; nothing was read or written (hint: GRANT SELECT, INSERT, UPDATE, DELETE ON "{pg_schema}".'
            f'"kl_rudder_metrics" TO "{role}" (a full refresh replaces the table: the role must own it), or load another schema or table_prefix)'
        )
        assert "missing" not in err and "Traceback" not in err
        assert wh.query("select id, name from kl_rudder_metrics") == [{"id": "m", "name": "kept"}]
        assert {r["id"] for r in wh.query("select id from kl_rudder_lists")} == lists  # the other stream loaded
    finally:
        wh.dest.close()
        with psycopg.connect(**POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{pg_schema}" CASCADE')
            admin.execute(f'DROP OWNED BY "{role}"')
            admin.execute(f'DROP ROLE "{role}"')


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never answers (a hung server, a proxy that lost its upstream)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # the kernel completes the handshakes: nothing ever reads or writes
    yield listener.getsockname()[1]
    listener.close()


def test_a_server_that_accepts_and_never_answers_fails_the_connection_in_seconds_when_no_timeout_is_configured(
    tmp_path: Path, silent_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without connect_timeout (in the config, the dsn or PGCONNECT_TIMEOUT) libpq waited for ever: `klx run` and
    # `klx check` hung at connecting, and a cron schedule piled up hung runs.
    from engine.destinations import postgres

    import threading

    monkeypatch.setattr(postgres, "CONNECT_TIMEOUT", 1, raising=False)  # (15 s unless patched)
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    path = postgres_config(tmp_path, "x", {"lists": "incremental"}, connection=[
        "  host: 127.0.0.1", f"  port: {silent_server}", "  user: postgres", "  database: test"])
    raised: list[BaseException] = []

    def connect() -> None:
        try:
            build_destination(Config.from_yaml(path, env=ENV).destination)
        except BaseException as err:  # noqa: BLE001 - looked at below
            raised.append(err)

    connecting = threading.Thread(target=connect, daemon=True)
    connecting.start()
    connecting.join(10)  # a bound, not a wait for something: it ends in about a second
    assert not connecting.is_alive(), "still connecting after 10 s"
    [err] = raised
    assert isinstance(err, WarehouseError)
    assert str(err).startswith(f"cannot connect to PostgreSQL at 127.0.0.1:{silent_server}/test: connection timeout expired")


@pytest.mark.parametrize("given", ["config", "dsn", "environment"])
def test_a_connect_timeout_the_user_gives_is_the_one_used(tmp_path: Path, pg_schema: str, monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    import psycopg

    from engine.destinations import postgres

    connected: list[dict[str, Any]] = []
    connect = psycopg.connect
    monkeypatch.setattr(psycopg, "connect", lambda dsn, **kw: connected.append(psycopg.conninfo.conninfo_to_dict(dsn, **kw)) or connect(dsn, **kw))
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    connection = ["  host: 127.0.0.1", "  user: postgres", "  database: test"]
    if given == "config":
        connection.append("  connect_timeout: 7")
    elif given == "dsn":
        connection = ["  dsn: postgresql://postgres@127.0.0.1:5432/test?connect_timeout=7"]
    else:
        monkeypatch.setenv("PGCONNECT_TIMEOUT", "7")
    build_destination(Config.from_yaml(postgres_config(tmp_path, pg_schema, {"lists": "incremental"}, connection=connection), env=ENV).destination).close()
    [used] = connected
    assert str(used.get("connect_timeout")) == ("7" if given != "environment" else "None")  # libpq reads PGCONNECT_TIMEOUT itself
    assert postgres.CONNECT_TIMEOUT == 15


def test_klx_sessions_are_named_klx_in_pg_stat_activity_unless_the_dsn_names_them(tmp_path: Path, pg_schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every klx session had an empty application_name: a DBA looking for the one holding a lock, or for klx's own to
    # end, could not tell it from any other psycopg or psql client.
    monkeypatch.delenv("PGAPPNAME", raising=False)
    for connection, name in ((["  host: 127.0.0.1", "  user: postgres", "  database: test"], "klx"),
                             (["  dsn: postgresql://postgres@127.0.0.1:5432/test?application_name=nightly-klx"], "nightly-klx")):
        dest = build_destination(Config.from_yaml(postgres_config(tmp_path, pg_schema, {"lists": "incremental"}, connection=connection), env=ENV).destination)
        try:
            assert dest.run_sql("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()", []) == [(name,)]
        finally:
            dest.close()


@pytest.mark.parametrize("given", ["dsn", "PGOPTIONS"])
def test_session_options_from_the_dsn_or_pgoptions_are_kept_beside_klx_s_utc(tmp_path: Path, pg_schema: str, monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    # klx passed options="-c TimeZone=UTC", which replaced the dsn's options= and PGOPTIONS: a DBA's
    # `options=-c statement_timeout=0` for klx's long merges was dropped without a word.
    monkeypatch.delenv("PGOPTIONS", raising=False)
    connection = ["  host: 127.0.0.1", "  user: postgres", "  database: test"]
    if given == "dsn":
        connection = ["  dsn: postgresql://postgres@127.0.0.1:5432/test?options=-c%20statement_timeout%3D4321"]
    else:
        monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=4321")
    dest = build_destination(Config.from_yaml(postgres_config(tmp_path, pg_schema, {"lists": "incremental"}, connection=connection), env=ENV).destination)
    try:
        assert dest.run_sql("SELECT current_setting('statement_timeout'), current_setting('TimeZone')", []) == [("4321ms", "UTC")]
    finally:
        dest.close()


def test_ctrl_c_ends_a_statement_waiting_on_another_session_s_lock_and_rolls_its_batch_back(tmp_path: Path, pg_schema: str) -> None:
    # Ctrl-C (or SIGTERM) stopped the API's requests at once, but a batch's statement the warehouse was running (a
    # long MERGE, or one waiting on a lock with lock_timeout 0) was waited for until it ended: the stop took as long.
    import signal
    import subprocess
    import sys

    import psycopg

    from tests.hostile_api import wait_for
    from tests.klx_testing import ROOT

    with Simulator(seed=0, scale=0.05, now=SIM_NOW) as sim:
        path = postgres_config(tmp_path, pg_schema, {"lists": "incremental"}, base_url=sim.url,
                               connection=["  host: 127.0.0.1", "  user: postgres", "  database: test", "  lock_timeout: 0"])
        env = {**os.environ, "KLAVIYO_API_KEY": sim.api_key}
        assert subprocess.run([sys.executable, "-m", "engine.cli", "run", str(path)], cwd=ROOT, env=env, capture_output=True).returncode == 0
        wh = open_warehouse("postgres", tmp_path, pg_schema)
        saved = wh.dest.read_state("lists")
        sim.mutate("lists", update=2, create=1)
        holder = _holding(pg_schema, "LOCK TABLE kl_rudder_lists IN SHARE MODE")  # no lock_timeout: klx would wait for ever
        process = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(path)], cwd=ROOT, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            with psycopg.connect(**POSTGRES, autocommit=True) as watcher:
                def waiting() -> bool:
                    return bool(watcher.execute("SELECT 1 FROM pg_stat_activity WHERE application_name = 'klx' AND wait_event_type = 'Lock' "
                                                "AND query ILIKE %s", [f"%{pg_schema}%kl_rudder_lists%"]).fetchall())

                wait_for(waiting, 60)  # klx's batch statement is waiting on the holder's lock
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=30)  # old code: still waiting, as long as the lock is held
        finally:
            process.kill()
            holder.close()
    assert process.returncode == 130, err
    assert err.splitlines()[-1] == "interrupted; committed batches are kept, the rest is rolled back" and "Traceback" not in err
    assert wh.dest.read_state("lists") == saved  # the batch rolled back, cursor and all
    wh.dest.close()


@pytest.mark.parametrize("given", ["none", "dsn"])
def test_a_server_gone_from_the_network_is_found_by_keepalives_in_minutes_unless_the_dsn_sets_them(
    tmp_path: Path, pg_schema: str, given: str
) -> None:
    # Walkthrough: a network that drops packets without a reset left klx waiting on a dead server for the operating
    # system's two hours of TCP idle before the first keepalive probe.
    connection = ["  host: 127.0.0.1", "  user: postgres", "  database: test"]
    if given == "dsn":
        connection = ["  dsn: postgresql://postgres@127.0.0.1:5432/test?keepalives_idle=600"]
    dest = build_destination(Config.from_yaml(postgres_config(tmp_path, pg_schema, {"lists": "incremental"}, connection=connection), env=ENV).destination)
    try:
        used = dest.connection.pgconn.info  # libpq's own view of the connection's parameters
        values = {option.keyword.decode(): (option.val or b"").decode() for option in used}
    finally:
        dest.close()
    assert (values["keepalives"], values["keepalives_interval"], values["keepalives_count"]) == ("1", "10", "3")
    assert values["keepalives_idle"] == ("60" if given == "none" else "600")


def test_a_statement_the_role_s_statement_timeout_cuts_says_how_to_give_klx_its_own(tmp_path: Path, pg_schema: str) -> None:
    # Walkthrough: a role-wide statement_timeout (a DBA's guard for BI users) cut klx's long MERGE, and the error
    # named the table and "canceling statement due to statement timeout", with nothing on what to change.
    import sqlglot

    dest = build_destination(Config.from_yaml(postgres_config(tmp_path, pg_schema, {"lists": "incremental"}), env=ENV).destination)
    try:
        dest.run_sql("SET statement_timeout = 50", [])  # as ALTER ROLE ... SET statement_timeout would
        with pytest.raises(WarehouseError) as cut:
            dest.execute("MERGE", "kl_rudder_lists", sqlglot.parse_one("SELECT pg_sleep(2)", read="postgres"))
        assert cut.value.message.startswith(f"MERGE on table {pg_schema}.kl_rudder_lists failed: canceling statement due to statement timeout")
        assert cut.value.hint == (
            "the session's statement_timeout (50ms, the role's or the database's) ended it; give klx's sessions their own, in the dsn "
            "(options=-c statement_timeout=0) or with ALTER ROLE <klx's role> SET statement_timeout = 0"
        )
    finally:
        dest.close()


def test_a_batch_the_role_s_statement_timeout_cuts_fails_its_stream_with_that_hint_and_nothing_written(tmp_path: Path, pg_schema: str) -> None:
    # The same inside a batch's transaction, which the error aborts: the hint is given without asking the session.
    from tests.test_sql_destinations import load

    wh = open_warehouse("postgres", tmp_path, pg_schema)
    load(wh, [{"id": "a", "updated": ts(1), "email": "kept"}], state={"n": 1})
    dest = wh.dest
    with dest.connection.transaction():  # a slow table: every write to it takes half a second (a DBA's audit trigger, say)
        dest.run_sql(f'CREATE FUNCTION "{pg_schema}".slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END $$', [])
        dest.run_sql(f'CREATE TRIGGER slow AFTER INSERT OR UPDATE ON "{pg_schema}".kl_profiles FOR EACH STATEMENT EXECUTE FUNCTION "{pg_schema}".slow()', [])
    dest.run_sql("SET statement_timeout = 200", [])
    try:
        with pytest.raises(WarehouseError) as cut:
            load(wh, [{"id": "b", "updated": ts(2), "email": "new"}], state={"n": 2})
    finally:
        dest.run_sql("SET statement_timeout = 0", [])
    assert cut.value.message.startswith(("MERGE on table", "INSERT on table")) and "statement timeout" in cut.value.message
    assert cut.value.hint == (
        "the session's statement_timeout (set, the role's or the database's) ended it; give klx's sessions their own, in the dsn "
        "(options=-c statement_timeout=0) or with ALTER ROLE <klx's role> SET statement_timeout = 0"
    )
    assert dest.read_state("profiles") == {"n": 1}
    assert wh.query("select id from kl_profiles") == [{"id": "a"}]
    dest.close()


def test_an_error_on_the_session_s_staging_table_does_not_place_it_in_the_schema(tmp_path: Path, pg_schema: str) -> None:
    # PostgreSQL walkthrough: with klx's session gone, the last line read "DROP TABLE on table <schema>.__klx_batch
    # failed": no such table is in the schema; the batch is staged in a temporary table of the session.
    import sqlglot

    dest = build_destination(Config.from_yaml(postgres_config(tmp_path, pg_schema, {"lists": "incremental"}), env=ENV).destination)
    failing = sqlglot.parse_one("SELECT * FROM klx_no_such_table", read="postgres")
    try:
        with pytest.raises(WarehouseError) as staged:
            dest.execute("DROP TABLE", "__klx_batch", failing)
        with pytest.raises(WarehouseError) as own:
            dest.execute("DROP TABLE", "kl_rudder_lists", failing)
    finally:
        dest.close()
    assert staged.value.message.startswith("DROP TABLE on table __klx_batch (the session's own staging table) failed: ")
    assert own.value.message.startswith(f"DROP TABLE on table {pg_schema}.kl_rudder_lists failed: ")
