"""`klx init` writes a starter config; relative paths in a config resolve against the config's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from engine.config import Config
from engine.starter import example_config_path
from klaviyo_sim import Simulator
from tests.klx_testing import READ_ONLY_WAYS, ROOT, SIM_NOW, read_only_folder, rows
from tests.warehouses import POSTGRES, pg_schema  # noqa: F401  (fixture)


def test_init_writes_the_documented_example_as_config_yaml(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert capsys.readouterr().out == "wrote config.yaml; set KLAVIYO_API_KEY, choose resources and schedule, then: klx check config.yaml\n"
    assert Path("config.yaml").read_text() == (ROOT / "config.example.yaml").read_text()


def test_init_into_a_folder_writes_config_yaml_there(tmp_path: Path, capsys) -> None:
    assert main(["init", str(tmp_path)]) == 0
    assert (tmp_path / "config.yaml").is_file()


def test_init_into_a_new_folder_ending_in_a_slash_creates_it_and_writes_config_yaml(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "newdir/"]) == 0
    assert capsys.readouterr().out == (
        "wrote newdir/config.yaml; set KLAVIYO_API_KEY, choose resources and schedule, then: klx check newdir/config.yaml\n"
    )
    assert (tmp_path / "newdir" / "config.yaml").read_text() == (ROOT / "config.example.yaml").read_text()


def test_init_into_a_folder_path_that_is_a_file_exits_2_and_leaves_it(tmp_path: Path, capsys) -> None:
    (tmp_path / "taken").write_text("keep me\n")
    assert main(["init", f"{tmp_path / 'taken'}/"]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'taken'} is a file, not a folder\n  hint: pass the folder to write config.yaml into, or a file name\n"
    )
    assert (tmp_path / "taken").read_text() == "keep me\n"


def test_init_never_overwrites_without_force(tmp_path: Path, capsys) -> None:
    target = tmp_path / "mine.yaml"
    target.write_text("keep me\n")
    assert main(["init", str(target)]) == 2
    assert capsys.readouterr().err == f"error: {target} already exists; not overwritten\n  hint: pass another path, or --force to overwrite it\n"
    assert target.read_text() == "keep me\n"
    assert main(["init", str(target), "--force"]) == 0
    assert target.read_text() == (ROOT / "config.example.yaml").read_text()


@pytest.mark.parametrize("how", READ_ONLY_WAYS)
def test_init_into_a_folder_it_cannot_write_exits_2_naming_the_file(tmp_path: Path, monkeypatch, capsys, how: str) -> None:
    # `klx init /etc/klx/config.yaml` as the user klx runs as, the folder root's: it was "internal error: PermissionError".
    folder = tmp_path / "etc-klx"
    folder.mkdir()
    with read_only_folder(folder, how, monkeypatch):
        assert main(["init", str(folder / "config.yaml")]) == 2
    assert capsys.readouterr().err == (
        f"error: cannot write {folder / 'config.yaml'}: Permission denied\n"
        f"  hint: run it as a user who may write in {folder}, or write it elsewhere and copy it there\n"
    )
    assert not (folder / "config.yaml").exists()


def test_example_config_is_found_in_a_checkout() -> None:
    assert example_config_path() == ROOT / "config.example.yaml"


def test_relative_duckdb_path_and_spec_resolve_against_the_config_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    folder = tmp_path / "etc" / "klx"
    folder.mkdir(parents=True)
    (folder / "specs").mkdir()
    (folder / "specs" / "mine.yaml").write_text((ROOT / "specs" / "klaviyo.yaml").read_text())
    with Simulator(seed=1, scale=0.02, now=SIM_NOW) as sim:
        (folder / "config.yaml").write_text(
            "source:\n  api_key: ${KLAVIYO_API_KEY}\n  start_date: 2024-01-01\n"
            f"  base_url: {sim.url}\n  spec: specs/mine.yaml\n"
            "destination:\n  path: data/kl.duckdb\n  table_prefix: kl_\nresources:\n  metrics: full_refresh\n"
        )
        (folder / "data").mkdir()
        elsewhere = tmp_path / "cron-cwd"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
        config = Config.from_yaml(folder / "config.yaml")
        assert config.source.spec == folder / "specs" / "mine.yaml"
        assert main(["run", str(folder / "config.yaml")]) == 0
    assert (folder / "data" / "kl.duckdb").is_file()
    assert list(elsewhere.iterdir()) == []


def test_demo_with_a_missing_config_exits_2(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--config", "nope.yaml"]) == 2
    assert capsys.readouterr().err == "error: nope.yaml: nope.yaml not found; pass an existing config to --config, or none for the bundled example\n"


def test_demo_with_a_config_keeps_the_simulators_data_out_of_that_configs_tables(tmp_path: Path, monkeypatch, capsys) -> None:
    # A user's real config given to the demo: its destination, but tables of their own. Merged into the real
    # tables, made-up rows would stay, and the simulator's cursors would make the next real run skip records.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text(
        "source:\n  api_key: ${KLAVIYO_API_KEY}\n  start_date: 2024-01-01\n"
        "destination:\n  path: real.duckdb\n  table_prefix: kl_\nresources:\n  metrics: full_refresh\n  lists: incremental\n"
    )
    assert main(["demo", "--config", "config.yaml", "--scale", "0.02"]) == 0
    assert "Tables get the prefix demo_kl_" in capsys.readouterr().out
    tables = {r["table_name"] for r in rows(tmp_path / "real.duckdb", "select table_name from information_schema.tables")}
    assert {"demo_kl_rudder_metrics", "demo_kl_rudder_lists", "demo_kl_klx_state"} <= tables
    assert not {t for t in tables if t.startswith("kl_")}


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_demo_with_a_config_prints_queries_that_find_its_tables(kind: str, tmp_path: Path, monkeypatch, capsys, request) -> None:
    # The demo's closing hint once always named a DuckDB file and unqualified tables: with a PostgreSQL
    # config it pointed at a klaviyo.duckdb that did not exist, and a schema other than main was left out.
    monkeypatch.chdir(tmp_path)
    if kind == "postgres":
        schema = request.getfixturevalue("pg_schema")
        where = "".join(f"  {key}: {value}\n" for key, value in {**POSTGRES, "database": POSTGRES["dbname"]}.items() if key != "dbname")
    else:
        schema, where = "raw", "  path: real.duckdb\n"
    (tmp_path / "config.yaml").write_text(
        "source:\n  api_key: ${KLAVIYO_API_KEY}\n  start_date: 2024-01-01\n"
        f"destination:\n  type: {kind}\n{where}  schema: {schema}\n  table_prefix: kl_\n"
        "resources:\n  events: incremental\n  profiles: incremental\n"
    )
    assert main(["demo", "--config", "config.yaml", "--scale", "0.02"]) == 0
    out = capsys.readouterr().out
    queries = [f"select count(*) from {schema}.demo_kl_rudder_profiles",
               f"select metric_name, count(*) from {schema}.demo_kl_rudder_events group by 1 order by 2 desc"]
    if kind == "postgres":
        assert f"Loaded into the postgres destination of config.yaml, tables {schema}.demo_kl_rudder_*. Query it, for example:\n" in out
        assert "duckdb" not in out and not (tmp_path / "klaviyo.duckdb").exists()
        assert all(f"\n  {query};\n" in out for query in queries)
        import psycopg

        with psycopg.connect(**POSTGRES) as con:
            assert [con.execute(query).fetchall() != [] for query in queries] == [True, True]
    else:
        assert "Loaded into real.duckdb. Query it, for example:\n" in out
        assert all(f"duckdb.connect('real.duckdb').sql('{query}')" in out for query in queries)
        assert [rows(tmp_path / "real.duckdb", query) != [] for query in queries] == [True, True]
