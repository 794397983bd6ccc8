"""Snowflake: the real connector code path, run against fakesnow where it emulates; golden SQL where it cannot.

fakesnow (0.12) cannot run ALTER TABLE ... SWAP WITH, and each MERGE it emulates commits what came before
(it creates a helper table, which is DDL): the swap and the one-transaction order are checked on the
statements the destination sends instead.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from engine.config import Config
from engine.destinations import build_destination
from engine.errors import ConfigError, WarehouseError
from engine.schema import Column, ColumnType, TableSpec
from tests.test_sql_destinations import COLUMNS, PROFILES, batch, ts

fakesnow = pytest.importorskip("fakesnow", reason="fakesnow is not installed (pip install -e '.[test]')")


def config_file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "snowflake.yaml"
    path.write_text("\n".join([
        "source:", "  api_key: pk_x", "  start_date: 2024-01-01", "destination:", "  type: snowflake", "  table_prefix: kl_",
        *lines, "resources:", "  lists: incremental",
    ]) + "\n")
    return path


ACCOUNT = ["  account: acme-xy123", "  user: KLX", "  password: ${SNOWFLAKE_PASSWORD}", "  warehouse: LOADING",
           "  database: RAW", "  schema: klaviyo", "  role: LOADER"]


class Recorder:
    """Every statement the destination sends, in order."""

    def __init__(self, dest: Any) -> None:
        self.statements: list[str] = []
        self.commits = 0
        run_sql, con = dest.run_sql, dest.connection
        commit = con.commit

        def recording(text: str, params: Any) -> Any:
            self.statements.append(text)
            return run_sql(text, params)

        def committing() -> None:
            self.statements.append("<COMMIT>")
            commit()

        dest.run_sql = recording
        con.commit = committing


@pytest.fixture
def dest(tmp_path: Path) -> Iterator[Any]:
    with fakesnow.patch():
        config = Config.from_yaml(config_file(tmp_path, ACCOUNT), env={"SNOWFLAKE_PASSWORD": "pw-secret"})
        destination = build_destination(config.destination)
        yield destination
        destination.close()


def load(dest: Any, rows: list[dict[str, Any]], *, columns: list[Column] = COLUMNS, replace: bool = False,
         state: dict[str, Any] | None = None) -> None:
    run = dest.begin("profiles", PROFILES, replace=replace)
    run.write(batch(columns, rows), columns, state or {})
    run.finish(state or {})


def query(dest: Any, text: str) -> list[tuple]:
    with dest.connection.cursor() as cursor:
        return cursor.execute(text).fetchall()


def test_rows_land_in_upper_case_tables_with_the_newest_cursor_per_key(dest: Any) -> None:
    load(dest, [{"id": "a", "updated": ts(2), "email": "new"}, {"id": "b", "updated": ts(1), "email": "old"}], state={"n": 1})
    load(dest, [{"id": "a", "updated": ts(1), "email": "stale"}, {"id": "b", "updated": ts(3), "email": "newer"}], state={"n": 2})
    rows = query(dest, "select id, email from klaviyo.kl_profiles order by id")  # unquoted: upper-case names
    assert rows == [("a", "new"), ("b", "newer")]
    assert dest.read_state("profiles") == {"n": 2}
    assert query(dest, "select count(*) from klaviyo.kl_klx_state") == [(1,)]


def test_json_columns_are_parsed_into_variant(dest: Any) -> None:
    columns = [*COLUMNS[:2], Column(name="props", type=ColumnType.JSON)]
    load(dest, [{"id": "a", "updated": ts(1), "props": json.dumps({"k": [1, "two"]})}], columns=columns)
    (props,) = query(dest, "select props:k[1]::varchar from klaviyo.kl_profiles")[0]
    assert props == "two"
    assert dest.columns_of("KL_PROFILES")["PROPS"].sql("snowflake") == "VARIANT"


def test_columns_widen_by_add_copy_drop_rename(dest: Any) -> None:
    base = COLUMNS[:2]
    load(dest, [{"id": "a", "updated": ts(1), "n": 1}], columns=[*base, Column(name="n", type=ColumnType.BIGINT)])
    load(dest, [{"id": "b", "updated": ts(1), "n": 2.5}], columns=[*base, Column(name="n", type=ColumnType.DOUBLE)])
    assert query(dest, "select n from klaviyo.kl_profiles order by id") == [(1.0,), (2.5,)]
    assert dest.columns_of("KL_PROFILES")["N"].sql("snowflake") in ("FLOAT", "DOUBLE")
    assert "N__KLX_WIDEN" not in dest.columns_of("KL_PROFILES")


def test_first_full_refresh_renames_the_shadow_into_place(dest: Any) -> None:
    load(dest, [{"id": "a", "updated": ts(1), "email": None}], replace=True)
    assert query(dest, "select id from klaviyo.kl_profiles") == [("a",)]
    tables = {r[0] for r in query(dest, "select table_name from information_schema.tables where table_schema = 'KLAVIYO'")}
    assert tables == {"KL_PROFILES", "KL_KLX_STATE", "KL_KLX_BATCH"}  # no shadow; the staging table until close()


def test_a_first_full_refresh_resolves_keys_repeated_across_batches_before_the_rename(dest: Any) -> None:
    # The batches go in unmatched; finish keeps, of each repeated key, the row MERGEs in load order keep.
    columns = [*COLUMNS, Column(name="uuid_ts", type=ColumnType.TIMESTAMP)]
    table = TableSpec(name="kl_profiles", primary_key=("id",), cursor="updated", loaded_at="uuid_ts")
    recorder = Recorder(dest)
    run = dest.begin("profiles", table, replace=True)
    batches = [
        [{"id": "a", "updated": ts(2), "email": "a0"}, {"id": "b", "updated": None, "email": "b0"}],
        [{"id": "a", "updated": ts(2), "email": "a1"}, {"id": "b", "updated": ts(1), "email": "b1"}],
        [{"id": "a", "updated": ts(3), "email": "a2"}, {"id": "c", "updated": ts(1), "email": "c2"}],
    ]
    counts = [run.write(batch(columns, [{**r, "uuid_ts": ts(20, n)} for r in rows]), columns, {}) for n, rows in enumerate(batches)]
    finished = run.finish({"n": 1})
    assert not any(s.startswith("MERGE") and "KL_PROFILES" in s and "STATE" not in s for s in recorder.statements)
    assert query(dest, "select id, email from klaviyo.kl_profiles order by id") == [("a", "a2"), ("b", "b1"), ("c", "c2")]
    assert (sum(c.inserted for c in counts) + finished.inserted, sum(c.updated for c in counts) + finished.updated) == (3, 2)
    assert type(finished.inserted) is int and type(finished.updated) is int


def test_a_first_incremental_sync_resolves_its_repeated_keys_in_the_commit_that_clears_its_state_mark(dest: Any) -> None:
    columns = [*COLUMNS, Column(name="uuid_ts", type=ColumnType.TIMESTAMP)]
    table = TableSpec(name="kl_profiles", primary_key=("id",), cursor="updated", loaded_at="uuid_ts")
    run = dest.begin("profiles", table, replace=False)
    batches = [[{"id": "a", "updated": ts(2), "email": "a0"}, {"id": "b", "updated": ts(1), "email": "b0"}],
               [{"id": "a", "updated": ts(3), "email": "a1"}]]
    for n, rows in enumerate(batches):
        run.write(batch(columns, [{**r, "uuid_ts": ts(20, n)} for r in rows]), columns, {"n": n})
    assert dest.read_state("profiles") == {"n": 1, "version": 2, "unresolved": ts(20, 1).isoformat()}
    recorder = Recorder(dest)
    finished = run.finish({"n": 2})
    kinds = [s.split(" ")[0] if s != "<COMMIT>" else s for s in recorder.statements if not s.startswith("SELECT")]
    assert kinds == ["DELETE", "MERGE", "<COMMIT>"]  # superseded rows and the state, one commit
    assert (finished.inserted, finished.updated) == (-1, 1)
    assert query(dest, "select id, email from klaviyo.kl_profiles order by id") == [("a", "a1"), ("b", "b0")]
    assert dest.read_state("profiles") == {"n": 2}


def test_a_later_incremental_load_gathers_its_batches_and_merges_them_with_the_final_state(dest: Any, monkeypatch) -> None:
    monkeypatch.setattr(dest, "gather_from", 0)
    columns = [*COLUMNS, Column(name="uuid_ts", type=ColumnType.TIMESTAMP)]
    table = TableSpec(name="kl_profiles", primary_key=("id",), cursor="updated", loaded_at="uuid_ts")
    load(dest, [{"id": "a", "updated": ts(2), "email": "a-old"}, {"id": "b", "updated": ts(1), "email": "b-old"}])
    recorder = Recorder(dest)
    run = dest.begin("profiles", table, replace=False)
    batches = [[{"id": "a", "updated": ts(1), "email": "stale"}, {"id": "c", "updated": ts(1), "email": "c0"}],
               [{"id": "b", "updated": ts(3), "email": "b1"}, {"id": "c", "updated": ts(2), "email": "c1"}]]
    counts = [run.write(batch(columns, [{**r, "uuid_ts": ts(20, n)} for r in rows]), columns, {"n": n}) for n, rows in enumerate(batches)]
    assert [(c.inserted, c.updated) for c in counts] == [(0, 0), (0, 0)]
    assert query(dest, "select id, email from klaviyo.kl_profiles order by id") == [("a", "a-old"), ("b", "b-old")]
    kinds = [s.split(" ")[0] if s != "<COMMIT>" else s for s in recorder.statements if not s.startswith("SELECT")]
    assert kinds.index("CREATE") < kinds.index("<COMMIT>")  # the pending table, made before the batch's transaction
    recorder.statements.clear()
    finished = run.finish({"n": 2})
    assert (finished.inserted, finished.updated) == (1, 2)  # c new (then updated), b updated; the stale a left as it was
    assert type(finished.inserted) is int and type(finished.updated) is int  # fakesnow's SUMs are floats: "1.0" in the summary
    kinds = [s.split(" ")[0] if s != "<COMMIT>" else s for s in recorder.statements if not s.startswith("SELECT")]
    assert kinds == ["DELETE", "MERGE", "DELETE", "MERGE", "<COMMIT>", "DROP"]  # superseded, merge, empty, state; then drop
    assert query(dest, "select id, email from klaviyo.kl_profiles order by id") == [("a", "a-old"), ("b", "b1"), ("c", "c1")]
    assert dest.read_state("profiles") == {"n": 2}


def test_a_full_refresh_over_a_table_swaps_with_it_then_saves_state(dest: Any) -> None:
    load(dest, [{"id": "a", "updated": ts(1), "email": None}])
    recorder = Recorder(dest)
    run = dest.begin("profiles", PROFILES, replace=True)
    run.write(batch(COLUMNS, [{"id": "b", "updated": ts(1), "email": None}]), COLUMNS, {})
    with pytest.raises(WarehouseError, match="SWAP IN on table KLAVIYO.KL_PROFILES failed"):
        run.finish({"n": 1})  # fakesnow has no SWAP WITH; the statement is what Snowflake runs
    swap = [s for s in recorder.statements if "SWAP WITH" in s]
    assert swap == ['ALTER TABLE "KLAVIYO"."KL_PROFILES" SWAP WITH "KLAVIYO"."KL_PROFILES__KLX_SHADOW"']
    run.abort()


def test_data_and_state_merges_share_one_commit_after_all_ddl(dest: Any) -> None:
    load(dest, [{"id": "a", "updated": ts(1), "email": None}])
    recorder = Recorder(dest)
    columns = [*COLUMNS, Column(name="phone", type=ColumnType.TEXT)]
    run = dest.begin("profiles", PROFILES, replace=False)
    recorder.statements.clear()  # (begin counted the table's rows)
    counts = run.write(batch(columns, [{"id": "b", "updated": ts(2), "email": None, "phone": "1"}]), columns, {"n": 2})
    kinds = [s.split(" ")[0] if s != "<COMMIT>" else s for s in recorder.statements if not s.startswith("SELECT")]
    data = kinds.index("MERGE")  # into a table with rows: one MERGE, whose answer says what it inserted and updated
    assert kinds[data:data + 3] == ["MERGE", "MERGE", "<COMMIT>"]  # data MERGE, state MERGE, one commit
    assert "ALTER" in kinds[:data] and "ALTER" not in kinds[data:]  # the new column came first
    assert "PUT" in kinds and "COPY" in kinds
    assert (counts.inserted, counts.updated) == (1, 0)
    assert not [s for s in recorder.statements if "COUNT(" in s.upper()]  # no count before or after the MERGE
    recorder.statements.clear()
    counts = run.write(batch(columns, [{"id": "a", "updated": ts(3), "email": None, "phone": "2"}]), columns, {"n": 3})
    kinds = [s.split(" ")[0] if s != "<COMMIT>" else s for s in recorder.statements if not s.startswith("SELECT")]
    data = kinds.index("MERGE")
    assert kinds[data:data + 3] == ["MERGE", "MERGE", "<COMMIT>"]  # a key in the table: data MERGE, state MERGE, one commit
    assert (counts.inserted, counts.updated) == (0, 1)
    assert not [s for s in recorder.statements if "COUNT(" in s.upper()]
    run.finish({"n": 3})
    assert query(dest, "select id, phone from klaviyo.kl_profiles order by id") == [("a", "2"), ("b", "1")]


def test_failed_load_is_rolled_back_and_the_staging_table_dropped(dest: Any) -> None:
    load(dest, [{"id": "a", "updated": ts(1), "email": "kept"}], state={"n": 1})
    bad = TableSpec(name="kl_profiles", primary_key=("id",), cursor="updated")
    run = dest.begin("profiles", bad, replace=False)
    with pytest.raises(ValueError):
        run.write(batch(COLUMNS, [{"id": "b", "updated": ts(2), "email": "x"}]).drop(["id"]), COLUMNS, {"n": 2})
    run.abort()
    assert query(dest, "select id, email from klaviyo.kl_profiles") == [("a", "kept")]
    assert dest.read_state("profiles") == {"n": 1}


def test_each_batch_replaces_the_staging_table_which_close_drops(dest: Any) -> None:
    # A DROP after every batch was a round trip a batch; the next batch's CREATE OR REPLACE replaces the table.
    recorder = Recorder(dest)
    run = dest.begin("profiles", PROFILES, replace=False)
    for n in range(3):
        run.write(batch(COLUMNS, [{"id": f"p{n}", "updated": ts(1), "email": None}]), COLUMNS, {"n": n})
    run.finish({"n": 3})
    staging = [s.split(" (")[0] for s in recorder.statements if '"KL_KLX_BATCH"' in s and s.startswith(("CREATE", "DROP"))]
    assert staging == ['CREATE OR REPLACE TRANSIENT TABLE "KLAVIYO"."KL_KLX_BATCH"'] * 3
    exists = "select count(*) from information_schema.tables where table_name = 'KL_KLX_BATCH'"
    assert query(dest, exists) == [(1,)]
    dest.close()
    assert recorder.statements[-1] == 'DROP TABLE IF EXISTS "KLAVIYO"."KL_KLX_BATCH"'


def test_a_failed_batch_drops_its_staging_table_at_once(dest: Any, monkeypatch) -> None:
    from engine.destinations.table_load import SqlLoad

    def refused(*args: Any, **kw: Any) -> Any:
        raise WarehouseError("refused")

    monkeypatch.setattr(SqlLoad, "_load", refused)
    run = dest.begin("profiles", PROFILES, replace=False)
    with pytest.raises(WarehouseError):
        run.write(batch(COLUMNS, [{"id": "a", "updated": ts(1), "email": None}]), COLUMNS, {})
    run.abort()
    assert query(dest, "select count(*) from information_schema.tables where table_name = 'KL_KLX_BATCH'") == [(0,)]


def test_password_or_key_pair_is_required(tmp_path: Path) -> None:
    lines = [line for line in ACCOUNT if "password" not in line]
    with pytest.raises(ConfigError, match="destination: give either password or private_key_path for 'snowflake'"):
        build_destination(Config.from_yaml(config_file(tmp_path, lines), env={}).destination)


def test_batches_hold_eight_times_the_rows_unless_batch_scale_says_otherwise(tmp_path: Path) -> None:
    with fakesnow.patch():
        for lines, scale in (([], 8), (["  batch_scale: 2"], 2)):
            dest = build_destination(Config.from_yaml(config_file(tmp_path, ACCOUNT + lines), env={"SNOWFLAKE_PASSWORD": "pw"}).destination)
            assert dest.batch_scale == scale
            dest.close()
    for bad in ("0", "65", "two", "true", "1.5"):
        path = config_file(tmp_path, [*ACCOUNT, f"  batch_scale: {bad}"])
        with pytest.raises(ConfigError, match=r"snowflake.yaml:\d+: destination.batch_scale: .* is not a whole number from 1 to 64"):
            build_destination(Config.from_yaml(path, env={"SNOWFLAKE_PASSWORD": "pw"}).destination)


def test_key_pair_auth_reads_a_pem_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(b"phrase"))
    (tmp_path / "rsa_key.p8").write_bytes(pem)
    lines = [line for line in ACCOUNT if "password" not in line]
    lines += ["  private_key_path: rsa_key.p8", "  private_key_passphrase: ${KEY_PHRASE}"]
    with fakesnow.patch():
        dest = build_destination(Config.from_yaml(config_file(tmp_path, lines), env={"KEY_PHRASE": "phrase"}).destination)
        assert dest.read_state("lists") is None
        dest.close()


def test_unreadable_private_key_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "rsa_key.p8").write_text("not a key")
    lines = [line for line in ACCOUNT if "password" not in line] + ["  private_key_path: rsa_key.p8"]
    with pytest.raises(ConfigError, match=r"snowflake.yaml:\d+: destination.private_key_path: cannot read a PEM private key"):
        build_destination(Config.from_yaml(config_file(tmp_path, lines), env={}).destination)


def test_a_snowflake_run_config_never_shows_the_password(tmp_path: Path) -> None:
    config = Config.from_yaml(config_file(tmp_path, ACCOUNT), env={"SNOWFLAKE_PASSWORD": "pw-secret"})
    assert "pw-secret" not in repr(config.destination)


def test_hostile_field_names_round_trip_without_injection(dest: Any) -> None:
    from engine.rows import LOAD_COLUMNS, ColumnMap, RowBuilder

    names = ColumnMap(None, reserved=LOAD_COLUMNS)
    builder = RowBuilder(names, depth=2)
    builder.add({"id": "a", "ID": "upper", 'a"; DROP TABLE x; --': "evil", "prénom 名前": "unicode", "x" * 300: 1,
                 "updated": "2024-01-01T00:00:00+00:00"}, ts(1))
    data, columns = builder.take({"uuid_ts": ts(1), "context_sources_job_run_id": "j", "context_sources_task_run_id": "t"})
    query(dest, "create table klaviyo.x (keep int)")
    load(dest, data.to_pylist(), columns=columns)
    with dest.connection.cursor() as cursor:
        cursor.execute("select * from klaviyo.kl_profiles")
        row = dict(zip([d[0] for d in cursor.description], cursor.fetchone()))
    landed = {k: v for k, v in row.items() if k.lower() not in LOAD_COLUMNS}
    assert landed == {"ID": "a", "ID_2": "upper", "A_DROP_TABLE_X": "evil", "PR_NOM": "unicode",
                      names.name(("x" * 300,)).upper(): 1, "UPDATED": ts(1)}
    assert query(dest, "select count(*) from klaviyo.x") == [(0,)]


def test_staging_statements_match_golden_sql(golden: Any) -> None:
    from sqlglot import exp as sqlexp

    from engine import sql
    from engine.destinations import snowflake

    statements = [
        snowflake.create_stage("KLAVIYO"),
        snowflake.put(Path("/tmp/klx-batch/0f1e.parquet"), "KLAVIYO"),
        snowflake.copy_into("KL_KLX_BATCH", "0f1e.parquet", "KLAVIYO"),
    ]
    text = "\n\n".join(sql.render(s, "snowflake", pretty=True) + ";" for s in statements)
    golden("snowflake/stage_batch.sql", text)
    import sqlglot

    parsed = [type(e) for e in sqlglot.parse(text, read="snowflake") if e is not None]
    assert parsed == [sqlexp.Create, sqlexp.Put, sqlexp.Copy]


def test_run_history_is_appended_and_read_back(dest: Any) -> None:
    from datetime import datetime, timezone

    from engine import sql

    values = {ColumnType.TEXT: "x", ColumnType.BIGINT: 3, ColumnType.TIMESTAMP: datetime(2026, 1, 2, tzinfo=timezone.utc),
              ColumnType.DOUBLE: 1.5, ColumnType.BOOLEAN: True}
    row = [values[c.type] for c in sql.RUNS_COLUMNS]
    dest.append_run([row])
    (read,) = dest.read_runs(5)
    assert read["run_id"] == "x" and read["records"] == 3
    assert query(dest, "select count(*) from klaviyo.kl_klx_runs") == [(1,)]


def test_rudderstack_table_is_adopted_with_its_types_and_extra_columns(dest: Any) -> None:
    query(dest, "create table klaviyo.kl_profiles (id varchar(512), updated timestamp_ntz, email text, count number(38, 0), legacy text)")
    query(dest, "insert into klaviyo.kl_profiles (id, legacy) values ('old', 'kept')")
    before = {n: t.sql("snowflake") for n, t in dest.columns_of("KL_PROFILES").items()}
    columns = [*COLUMNS, Column(name="count", type=ColumnType.BIGINT)]
    load(dest, [{"id": "a", "updated": ts(2, 13), "email": "e", "count": 7}], columns=columns)
    assert {n: t.sql("snowflake") for n, t in dest.columns_of("KL_PROFILES").items()} == before
    from datetime import datetime

    assert query(dest, "select id, updated, count, legacy from klaviyo.kl_profiles order by id") == [
        ("a", datetime(2024, 1, 2, 13), 7, None), ("old", None, None, "kept")]


def test_a_value_too_long_for_an_adopted_varchar_names_the_column_and_the_fix(dest: Any) -> None:
    # fakesnow keeps VARCHAR(5) in information_schema but, like DuckDB, does not enforce it: the refusal is
    # Snowflake's own error as its connector raises it ("100078 (22000): String '…' is too long and would be truncated").
    import snowflake.connector.errors

    query(dest, "create table klaviyo.kl_profiles (id varchar(512), updated timestamp_ntz, email varchar(5))")
    load(dest, [{"id": "a", "updated": ts(1), "email": "a@x"}], state={"n": 1})
    run_sql = dest.run_sql

    def refusing(text: str, params: Any) -> Any:
        if text.startswith(("INSERT INTO \"KLAVIYO\".\"KL_PROFILES", "MERGE INTO \"KLAVIYO\".\"KL_PROFILES")):
            raise snowflake.connector.errors.ProgrammingError(
                msg="String 'much-too-long@example.com' is too long and would be truncated", errno=100078, sqlstate="22000")
        return run_sql(text, params)

    dest.run_sql = refusing
    run = dest.begin("profiles", PROFILES, replace=False)
    with pytest.raises(WarehouseError) as raised:
        run.write(batch(COLUMNS, [{"id": "c", "updated": ts(2), "email": "much-too-long@example.com"}]), COLUMNS, {"n": 2})
    run.abort()
    dest.run_sql = run_sql
    assert raised.value.message == (
        "stream profiles: column 'EMAIL' of table KLAVIYO.KL_PROFILES is VARCHAR(5), too short for a value of 25 characters; "
        "nothing of the batch was written"
    )
    assert raised.value.hint.startswith('widen the column to text: ALTER TABLE "KLAVIYO"."KL_PROFILES" ADD "EMAIL__KLX_WIDEN" VARCHAR; ')
    assert query(dest, "select id, email from klaviyo.kl_profiles") == [("a", "a@x")]
    assert dest.read_state("profiles") == {"n": 1}


def test_discover_columns_lists_the_upper_case_tables_a_run_loaded(dest: Any, tmp_path: Path, monkeypatch, capsys) -> None:
    # discover asked information_schema for kl_rudder_lists; Snowflake stores it as KL_RUDDER_LISTS: "not loaded yet".
    from engine.cli import main

    query(dest, "create table klaviyo.kl_rudder_lists (id varchar, updated timestamp_tz, tags_ids variant)")
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", "pw-secret")
    assert main(["discover", str(config_file(tmp_path, ACCOUNT)), "--columns"]) == 0
    out = capsys.readouterr().out
    assert "not loaded yet" not in out
    assert out.split("\n\n", 1)[1].split() == ["KL_RUDDER_LISTS", "(3", "columns)", "ID", "VARCHAR", "UPDATED", "TIMESTAMPTZ", "TAGS_IDS", "VARIANT"]
    assert "pw-secret" not in out


def test_a_column_type_conflict_stops_the_batch_before_any_column_is_added(dest: Any) -> None:
    # Snowflake DDL commits: the columns added before the conflicting one was reached stayed, though nothing loaded.
    query(dest, "create table klaviyo.kl_profiles (id varchar, email varchar, created date)")
    query(dest, "insert into klaviyo.kl_profiles values ('old', 'kept', '2024-01-01')")
    before = {n: t.sql("snowflake") for n, t in dest.columns_of("KL_PROFILES").items()}
    columns = [*COLUMNS, Column(name="phone", type=ColumnType.TEXT), Column(name="created", type=ColumnType.TIMESTAMP)]
    run = dest.begin("profiles", PROFILES, replace=False)
    with pytest.raises(WarehouseError, match="column 'CREATED' of table KLAVIYO.KL_PROFILES has type DATE"):
        run.write(batch(columns, [{"id": "a", "updated": ts(2), "email": "e", "phone": "1", "created": ts(1)}]), columns, {"n": 1})
    run.abort()
    assert {n: t.sql("snowflake") for n, t in dest.columns_of("KL_PROFILES").items()} == before
    assert query(dest, "select id, email from klaviyo.kl_profiles") == [("old", "kept")]
    assert dest.read_state("profiles") is None


def test_a_failed_streams_line_carries_the_whole_fix_for_a_type_conflict(dest: Any) -> None:
    # The line was cut at 500 characters: Snowflake's fix (add, copy, drop, rename) ended "RENAME COLUMN ... TO …".
    from engine.cli_output import failure_line
    from engine.run import StreamSummary

    long = "predictive_analytics_expected_date_of_next_order"
    query(dest, f"create table klaviyo.kl_profiles (id varchar, updated timestamp_tz, {long} date)")
    columns = [*COLUMNS[:2], Column(name=long, type=ColumnType.TIMESTAMP)]
    run = dest.begin("profiles", PROFILES, replace=False)
    with pytest.raises(WarehouseError) as raised:
        run.write(batch(columns, [{"id": "a", "updated": ts(2), long: ts(1)}]), columns, {})
    run.abort()
    line = failure_line(StreamSummary(stream="profiles", mode="incremental", table="kl_profiles", error=raised.value))
    assert "\n" not in line
    assert line.startswith(f"error: stream profiles failed: column '{long.upper()}' of table KLAVIYO.KL_PROFILES has type DATE, ")
    assert line.endswith(f'RENAME COLUMN "{long.upper()}__KLX_WIDEN" TO "{long.upper()}", or drop the column, then sync again)')


def test_klx_sql_shows_the_statements_a_first_snowflake_load_sends(dest: Any, tmp_path: Path) -> None:
    # klx sql showed INSERT ... FROM "__klx_batch", a table no Snowflake run has (it COPYs into "KLAVIYO"."KL_KLX_BATCH"),
    # no PUT or COPY INTO, and the table's columns in another order than a run creates them.
    import re

    from engine.commands import sql_preview
    from engine.plan import build_plan
    from engine.spec import Spec
    from engine import sql as sqlmod

    path = config_file(tmp_path, ACCOUNT)
    _, sections = sql_preview.statements(path, only=("lists",))
    shown = [sqlmod.render(s, "snowflake") for s in dict(sections)["lists (incremental) -> KL_RUDDER_LISTS"]]
    config = Config.from_yaml(path, env={"SNOWFLAKE_PASSWORD": "pw"})
    [stream_plan] = build_plan(config, Spec.from_yaml(config.source.spec), {}, datetime.now(timezone.utc), only=("lists",)).streams
    recorder = Recorder(dest)
    sql_preview.preview_load(dest, stream_plan)
    files = re.compile(r"'file://[^']+'|/[0-9a-z_]+\.parquet")  # each batch's own file
    sent = [files.sub("FILE", s) for s in recorder.statements if not s.startswith(("SELECT", "<COMMIT>"))]
    shown = [files.sub("FILE", s) for s in shown if s not in ("BEGIN", "COMMIT")]
    assert sent == shown
    assert 'FROM "KLAVIYO"."KL_KLX_BATCH"' in "\n".join(shown) and "COPY INTO" in "\n".join(shown)
    # A later run into a table past gather_from rows: its batch gathered in the pending table, then merged.
    later = [sqlmod.render(s, "snowflake") for heading, statements in sections if heading.startswith("lists: later runs") for s in statements]
    dest.gather_from = 1
    recorder.statements.clear()
    sql_preview.preview_load(dest, stream_plan, later=True)
    sent = [files.sub("FILE", s) for s in recorder.statements if not s.startswith(("SELECT", "<COMMIT>"))]
    # (The preview also shows the DELETE of superseded pending rows, sent only when a key repeats among them.)
    superseded = 'DELETE FROM "KLAVIYO"."KL_RUDDER_LISTS__KLX_PENDING" WHERE'
    assert sent == [files.sub("FILE", s) for s in later if s not in ("BEGIN", "COMMIT") and not s.startswith(superseded)]


def test_a_full_refresh_shadow_copies_the_tables_grants_so_the_swap_keeps_them(dest: Any) -> None:
    # SWAP WITH swaps grants with contents: a shadow made by CREATE ... AS SELECT had none, so after the swap the
    # table a BI or dbt role was granted SELECT on had no grants left. (fakesnow keeps no grants: the statement is checked.)
    query(dest, "create table klaviyo.kl_profiles (id varchar, updated timestamp_ntz, email varchar, legacy number(38, 0))")
    recorder = Recorder(dest)
    run = dest.begin("profiles", PROFILES, replace=True)
    assert 'CREATE TABLE "KLAVIYO"."KL_PROFILES__KLX_SHADOW" LIKE "KLAVIYO"."KL_PROFILES" COPY GRANTS' in recorder.statements
    columns = {n: t.sql("snowflake") for n, t in dest.columns_of("KL_PROFILES__KLX_SHADOW").items()}
    assert columns == {"ID": "VARCHAR", "UPDATED": "TIMESTAMPNTZ", "EMAIL": "VARCHAR", "LEGACY": "DECIMAL(38, 0)"}
    run.abort()


def test_the_guides_snowflake_statements_keep_one_row_of_each_key_rudderstack_appended_twice(dest: Any) -> None:
    # RudderStack's append mode can leave a key twice; klx updates both rows and removes neither.
    import re

    guide = (Path(__file__).resolve().parent.parent / "docs" / "migrating-from-rudderstack.md").read_text()
    find, keep = re.search(r"^(select id, count\(\*\) from kl_rudder_lists .*?);\n(create or replace table kl_rudder_lists .*?);$", guide, re.M | re.S).groups()
    query(dest, "use schema klaviyo")
    query(dest, "create table kl_rudder_lists (id varchar, attributes_name varchar, uuid_ts timestamp_tz)")
    query(dest, "insert into kl_rudder_lists values ('a', 'first', '2025-01-01 00:00:00+00:00'), ('a', 'again', '2025-02-01 00:00:00+00:00'), "
                "('b', 'once', '2025-01-01 00:00:00+00:00')")
    assert query(dest, find) == [("a", 2)]
    query(dest, keep)
    assert query(dest, "select id, attributes_name from kl_rudder_lists order by id") == [("a", "again"), ("b", "once")]


def test_an_unreachable_account_is_one_error_without_the_connectors_retry_warnings(tmp_path: Path, monkeypatch, capsys, caplog) -> None:
    # Each retry logged "WARNING snowflake.connector.vendored.urllib3.connectionpool: Retrying (...) after connection
    # broken by NameResolutionError(...): /session/v1/login-request?request_id=..." before klx's own error.
    import logging

    import snowflake.connector

    def unreachable(**kw: Any) -> Any:
        logging.getLogger("snowflake.connector.vendored.urllib3.connectionpool").warning("Retrying (Retry(total=0)) after connection broken")
        raise snowflake.connector.errors.OperationalError(msg="Could not connect to Snowflake backend after 2 attempt(s).Aborting", errno=250001)

    monkeypatch.setattr(logging.getLogger("snowflake.connector"), "level", logging.NOTSET)  # restored after the test
    monkeypatch.setattr(snowflake.connector, "connect", unreachable)
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", "pw-secret")
    from engine.cli import main

    assert main(["state", "show", str(config_file(tmp_path, ACCOUNT))]) == 4
    assert [r.getMessage() for r in caplog.records if r.name.startswith("snowflake")] == []
    err = capsys.readouterr().err
    assert err.startswith("error: cannot connect to Snowflake account 'acme-xy123' as 'KLX': 250001: Could not connect")
    assert "pw-secret" not in err


def test_klx_sql_shows_the_statements_a_first_snowflake_full_refresh_sends(dest: Any, tmp_path: Path) -> None:
    import re

    from engine import sql as sqlmod
    from engine.commands import sql_preview
    from engine.plan import build_plan
    from engine.spec import Spec

    path = config_file(tmp_path, ACCOUNT)
    path.write_text(path.read_text().replace("  lists: incremental", "  metrics: full_refresh"))
    _, sections = sql_preview.statements(path)
    shown = [sqlmod.render(s, "snowflake") for s in dict(sections)["metrics (full_refresh) -> KL_RUDDER_METRICS"]]
    config = Config.from_yaml(path, env={"SNOWFLAKE_PASSWORD": "pw"})
    [stream_plan] = build_plan(config, Spec.from_yaml(config.source.spec), {}, datetime.now(timezone.utc)).streams
    recorder = Recorder(dest)
    sql_preview.preview_load(dest, stream_plan)
    files = re.compile(r"'file://[^']+'|/[0-9a-z_]+\.parquet")
    sent = [files.sub("FILE", s) for s in recorder.statements if not s.startswith(("SELECT", "<COMMIT>"))]
    assert sent == [files.sub("FILE", s) for s in shown if s not in ("BEGIN", "COMMIT")]
    assert dest.has_table("kl_rudder_metrics") and not dest.has_table("kl_rudder_metrics__klx_shadow")


def test_a_new_column_on_a_table_another_role_owns_says_how_to_give_klx_the_table(dest: Any) -> None:
    # RudderStack's role owns the tables it made; ALTER TABLE needs OWNERSHIP. fakesnow has no roles: the refusal is
    # Snowflake's own error as its connector raises it.
    import snowflake.connector.errors

    query(dest, "create table klaviyo.kl_profiles (id varchar, updated timestamp_tz, email varchar)")
    run_sql = dest.run_sql

    def refusing(text: str, params: Any) -> Any:
        if text.startswith('ALTER TABLE "KLAVIYO"."KL_PROFILES" ADD'):
            raise snowflake.connector.errors.ProgrammingError(
                msg="SQL access control error:\nInsufficient privileges to operate on table 'KL_PROFILES'", errno=3001, sqlstate="42501")
        return run_sql(text, params)

    dest.run_sql = refusing
    columns = [*COLUMNS, Column(name="phone", type=ColumnType.TEXT)]
    run = dest.begin("profiles", PROFILES, replace=False)
    with pytest.raises(WarehouseError) as raised:
        run.write(batch(columns, [{"id": "a", "updated": ts(1), "email": "e", "phone": "1"}]), columns, {"n": 1})
    run.abort()
    assert raised.value.message == (
        "ADD COLUMN on table KLAVIYO.KL_PROFILES failed: 003001 (42501): SQL access control error: Insufficient privileges to operate on table 'KL_PROFILES'")
    assert raised.value.hint == (
        "klx's role must own the tables it changes, RudderStack's too: GRANT OWNERSHIP ON TABLE \"KLAVIYO\".\"KL_PROFILES\" TO ROLE LOADER "
        "COPY CURRENT GRANTS (docs/migrating-from-rudderstack.md, \"Snowflake: the role klx loads as\")")


def test_an_adopted_text_cursor_is_warned_about_as_compared_as_text(dest: Any, caplog) -> None:
    # Seen on fakesnow: RudderStack's '2026-03-16T01:00:00+00:00' stayed over klx's newer read of the same day, whose
    # text sorts first; the run said 'updated 0' and nothing else.
    query(dest, "create table klaviyo.kl_profiles (id varchar, updated varchar, email varchar)")
    query(dest, "insert into klaviyo.kl_profiles values ('a', '2024-01-02T01:00:00+00:00', 'rs')")
    run = dest.begin("profiles", PROFILES, replace=False)
    run.write(batch(COLUMNS, [{"id": "a", "updated": ts(2, 13), "email": "klx"}]), COLUMNS, {"n": 1})
    run.finish({"n": 1})
    assert query(dest, "select email from klaviyo.kl_profiles") == [("rs",)]  # the newer version, lost: hence the warning
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name.startswith("klx")] == [
        "stream profiles: the cursor column UPDATED of table KLAVIYO.KL_PROFILES is VARCHAR, compared as text with the timestamps "
        "klx loads: rename it before syncing (docs/migrating-from-rudderstack.md, \"The first run into RudderStack's tables\")"
    ]


# --- the claim on a schema and prefix: one run at a time, whatever the config file (Destination.claim) -----------


def second_destination(tmp_path: Path, prefix: str = "kl_") -> Any:
    """Another config file's destination on the same account and schema (a second machine, an Airflow worker)."""
    other = tmp_path / "other"
    other.mkdir(exist_ok=True)
    lines = config_file(other, ACCOUNT).read_text().replace("table_prefix: kl_", f"table_prefix: {prefix}")
    (other / "snowflake.yaml").write_text(lines)
    config = Config.from_yaml(other / "snowflake.yaml", env={"SNOWFLAKE_PASSWORD": "pw-secret"})
    return build_destination(config.destination)


def claims(dest: Any) -> list[tuple]:
    return query(dest, "select token, holder from klaviyo.kl_klx_lock")


def test_a_second_run_into_the_same_schema_and_prefix_is_refused_naming_the_first_and_another_prefix_is_not(
    dest: Any, tmp_path: Path
) -> None:
    from engine.errors import LockedError

    dest.claim()
    other, elsewhere = second_destination(tmp_path), second_destination(tmp_path, prefix="shop_")
    try:
        with pytest.raises(LockedError) as refused:
            other.claim()
        [(token, holder)] = claims(dest)  # the first run's row, untouched
        assert token == dest._claim and holder in str(refused.value)
        assert "KLAVIYO" in str(refused.value) and "'kl_'" in str(refused.value) and "lapses at" in str(refused.value)
        elsewhere.claim()  # another prefix in the same schema: other tables, its own claim
    finally:
        other.close()
        elsewhere.close()


def test_a_finished_run_releases_its_claim_so_the_next_run_takes_it_at_once(dest: Any, tmp_path: Path) -> None:
    dest.claim()
    load(dest, [{"id": "a", "updated": ts(1)}])
    dest.close()
    nxt = second_destination(tmp_path)
    try:
        assert claims(nxt) == []
        nxt.claim()
        assert [token for token, _ in claims(nxt)] == [nxt._claim]
    finally:
        nxt.close()


def test_a_lapsed_claim_is_taken_over_and_the_run_that_held_it_stops_before_its_next_statement(
    dest: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.destinations import snowflake
    from engine.errors import LockedError

    dest.claim()
    load(dest, [{"id": "a", "updated": ts(1)}])
    # The first run went quiet past its claim (killed, or stalled): its row lapsed, and a second run takes it.
    query(dest, "update klaviyo.kl_klx_lock set expires = dateadd(second, -1, current_timestamp())")
    dest.connection.commit()
    other = second_destination(tmp_path)
    try:
        other.claim()
        monkeypatch.setattr(snowflake, "RENEW_SECONDS", 0)  # the first run's next statement renews its claim
        with pytest.raises(LockedError) as stopped:
            load(dest, [{"id": "b", "updated": ts(2)}])
        assert "another klx run took it" in str(stopped.value)
        with pytest.raises(LockedError):  # and so does every statement after it
            dest.execute("READ", "x", snowflake.claim_statements("KL_KLX_LOCK", "KLAVIYO")["mine"], ("t",))
        assert query(other, "select id from klaviyo.kl_profiles") == [("a",)]  # b was never written
        dest.close()  # leaves the second run's claim in place
        assert [token for token, _ in claims(other)] == [other._claim]
    finally:
        other.close()


def test_a_run_renews_its_claim_as_it_goes(dest: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.destinations import snowflake

    dest.claim()
    [(first,)] = query(dest, "select expires from klaviyo.kl_klx_lock")
    assert first > datetime.now(timezone.utc)
    query(dest, "update klaviyo.kl_klx_lock set expires = dateadd(second, 5, current_timestamp())")  # nearly lapsed
    dest.connection.commit()
    monkeypatch.setattr(snowflake, "RENEW_SECONDS", 0)
    load(dest, [{"id": "a", "updated": ts(1)}])
    [(renewed,)] = query(dest, "select expires from klaviyo.kl_klx_lock")
    assert renewed > datetime.now(timezone.utc) + timedelta(seconds=snowflake.CLAIM_SECONDS - 60)


def test_claim_statements_match_golden_sql(golden: Any) -> None:
    from engine import sql
    from engine.destinations import snowflake

    statements = snowflake.claim_statements("KL_KLX_LOCK", "KLAVIYO")
    golden("snowflake/claim.sql", "\n\n".join(f"-- {name}\n" + sql.render(s, "snowflake", pretty=True) + ";" for name, s in statements.items()))


def test_state_reset_takes_the_claim_and_into_a_schema_that_does_not_exist_creates_nothing(
    dest: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.commands import state
    from engine.errors import LockedError

    monkeypatch.setenv("SNOWFLAKE_PASSWORD", "pw-secret")
    dest.claim()  # a run of another config file, loading now
    with pytest.raises(LockedError):
        state.reset(config_file(tmp_path, ACCOUNT))
    # A mistyped schema: nothing to hold and nothing to reset, and (klx state reset creates nothing) still no schema.
    elsewhere = tmp_path / "mistyped"
    elsewhere.mkdir()
    assert state.reset(config_file(elsewhere, [line.replace("schema: klaviyo", "schema: klaviyoo") for line in ACCOUNT])) == 0
    assert capsys.readouterr().out == "lists: no saved state, nothing to reset\n"
    assert query(dest, "select count(*) from information_schema.schemata where schema_name = 'KLAVIYOO'") == [(0,)]
