"""One stream's load into a SQL destination: evolve and adopt its table, stage each batch, upsert or gather it,
resolve keys repeated across batches, and swap a full refresh's shadow table into place."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator, Sequence

import pyarrow as pa
from sqlglot import exp

from engine import sql
from engine.destinations.base import WriteCounts
from engine.errors import WarehouseError
from engine.rows import LOAD_ORDER
from engine.schema import ARROW_TYPES, Column, ColumnType, TableSpec
from engine.state import mark_unresolved, unresolved_until

if TYPE_CHECKING:
    from engine.destinations.warehouse import SqlDestination

SHADOW_SUFFIX = "__klx_shadow"  # replace loads fill <table>__klx_shadow, then swap it in
PENDING_SUFFIX = "__klx_pending"  # incremental loads into a table holding rows gather batches here (SqlLoad)
STAGING_TABLE = "__klx_batch"  # the batch as a table (or view) the upsert reads from
DELETES_TABLE = "__klx_deletes"  # keys to delete, staged for the DELETE to read
log = logging.getLogger("klx.warehouse")


class SqlLoad:
    """One stream's load; see base.TableLoad."""

    def __init__(self, dest: SqlDestination, stream: str, table: TableSpec, *, replace: bool) -> None:
        self._dest = dest
        self._stream = stream
        self._spec = table
        self._table = TableSpec(
            name=dest.name(table.name),
            primary_key=tuple(dest.name(k) for k in table.primary_key),
            cursor=dest.name(table.cursor) if table.cursor else None,
            loaded_at=dest.name(table.loaded_at) if table.loaded_at else None,
        )
        self._replace = replace
        self._target = self._table.name
        shadow = dest.name(table.name + SHADOW_SUFFIX)
        self._into = shadow if replace else self._target
        self._columns: list[Column] = []
        self._prepared: tuple[Any, _Statements] | None = None  # the last batch's load statements, built as needed
        # What the last committed batch left in the table: its columns and their types (as columns_of() read them,
        # or as the DDL klx ran made them) and its row count (None after a DELETE: counted again); both None after
        # a failure. Nothing else writes the table during a load (the run's lock), so a batch need not read them again.
        # Profiled at scale 10: the information_schema read and two COUNT(*)s of every batch took 3.6 s of
        # the writer thread's 6.7 s in SQL, for 2.1 ms (the read) and 0.5 ms (a count) of DuckDB's CPU each.
        self._known: dict[str, exp.DataType] | None = None
        self._row_count: int | None = None
        self._altered = False  # whether _evolve changed the table (CREATE, ADD or WIDEN) in this batch
        # The state text the last committed batch saved: a batch whose state is the same saves nothing. A full
        # refresh keeps the old state until finish(), so it saves once; profiled on events + profiles, the
        # state upsert of every batch (a MERGE) was 8% of the writer thread's time.
        self._saved_state: str | None = None
        dest.ensure_state_table()
        # An incremental load into a table holding rows gathers its batches in <table>__klx_pending (below),
        # committed with the state. A load killed before merging them leaves that table: whatever the stream's
        # next load, it merges those rows first.
        self._pending = dest.name(table.name + PENDING_SUFFIX)
        found = dest.columns_of_tables([self._target, shadow, self._pending])  # one read of all three
        # A full refresh killed before its swap leaves the shadow behind: drop it, whatever this run's mode.
        if shadow in found:
            dest.execute("DROP TABLE", shadow, sql.drop_table(shadow, schema=dest.schema))
        existing = found.get(self._target, {})
        # Whether the table was there: a replace load writes only its shadow, so finish() need not ask again.
        self._target_existed = bool(existing)
        cursor_type = existing.get(self._table.cursor) if self._table.cursor and not replace else None
        if cursor_type is not None and sql.family(cursor_type) is ColumnType.TEXT:
            # An adopted text cursor keeps its type, so the upsert compares cursors as text: the warehouse's text of a
            # timestamp sorts before the API's ISO text of a later time the same day, and that change would be lost.
            log.warning(
                "stream %s: the cursor column %s of table %s.%s is %s, compared as text with the timestamps klx loads: "
                "rename it before syncing (docs/migrating-from-rudderstack.md, \"The first run into RudderStack's tables\")",
                stream, self._table.cursor, dest.schema, self._target, cursor_type.sql(dest.dialect),
            )
        self._pending_names: list[str] | None = None  # the pending table's columns, while it exists
        self._pending_rows = 0  # rows this load gathered there since the last merge
        self._carried: WriteCounts | None = None  # what merging a killed load's pending rows changed
        if left := found.get(self._pending):
            self._pending_names = list(left)
            if existing:  # (a table dropped since leaves nothing to merge into: its pending rows go with it)
                with dest.transaction():
                    self._carried = self._merge_pending(uncounted=True)
            self._drop_pending()
        if replace and existing:
            # The shadow starts with every column of the target, so no column disappears on swap.
            dest.execute("CREATE TABLE", shadow, sql.create_shadow(shadow, self._target, dest.dialect, schema=dest.schema))
        if replace:  # the shadow: the target's columns and types (CREATE ... AS SELECT, or LIKE, copies them), no rows; or none
            self._known, self._row_count = existing, 0
        # Matching a batch's keys against the rows before it reads the table's whole key column (DuckDB scans
        # every row group), so a load matching every batch costs the square of its size (bench/key_matching.py).
        # No load whose table names a load time (TableSpec.loaded_at) does:
        # - A deferred load writes its batches without matching them and at finish resolves the keys written
        #   more than once, as the MERGEs in load order would have, with one aggregate over the key columns. So
        #   does a replace load (its shadow holds only its own rows, and nobody reads it before the swap) and
        #   an incremental load into an empty table (a first sync). The latter's rows are visible as its
        #   batches commit, so its state says the keys are unresolved until finish(); a load killed before then
        #   leaves that in the state, and the stream's next load resumes deferring and resolves them at its end.
        # - Any other incremental load gathers its batches in the pending table and merges them into the table
        #   every `merge_every` rows, before the table changes, and at finish(): one match per merge.
        keyed = bool(self._table.primary_key) and self._table.loaded_at is not None
        self._last_loaded: datetime | None = None  # the load time of the last batch written deferred
        self._last_gathered: datetime | None = None  # the load time of the last batch gathered
        # A key can repeat only across two batches written deferred (each one's keys are distinct: its INSERT
        # dedups them), or in what a killed load left deferred: with one batch or none, nothing to resolve.
        self._deferred_batches, self._left_deferred = 0, False
        if replace:
            self._deferred = keyed
        else:
            # (A table dropped since its load was killed left nothing to resolve.)
            self._last_loaded = unresolved_until(dest.read_state(stream)) if keyed and existing else None
            self._left_deferred = self._last_loaded is not None  # a killed load's batches, their keys unresolved
            self._known, self._row_count = existing, self._count(prepared=True) if existing else 0
            self._deferred = keyed and (self._last_loaded is not None or self._row_count == 0)
        # Gathering pays an INSERT a batch and a merge, matching pays a scan of the table a batch: below the
        # destination's `gather_from` rows matching costs less, and the merge's join would hold more memory than it saves.
        self._may_gather = keyed and not replace and not self._deferred
        self._gathering = self._may_gather and (self._row_count or 0) >= dest.gather_from

    def write(self, batch: pa.Table, columns: Sequence[Column], state: dict[str, Any] | None, deletes: pa.Table | None = None) -> WriteCounts:
        """Evolve the table to `columns`, upsert `batch` on the key, DELETE the keys in `deletes` and save `state` (None: the saved
        state stays as it is), in one transaction.

        Returns what the batch changed: rows inserted, rows updated (key present, cursor advanced), columns added.
        A load that defers or gathers (__init__) counts rows when it resolves or merges them (finish() too).

        `deletes` (primary-key columns only) comes after the upsert: a key the source dropped since it was
        last read goes, even if an older copy of it is in `batch`.
        """
        known = {c.name for c in columns}
        unknown = [name for name in batch.column_names if name not in known]
        needed = [*self._spec.primary_key, *([self._spec.cursor] if self._spec.cursor else [])]
        missing = [name for name in needed if name not in batch.column_names]
        if unknown or missing:
            raise ValueError(f"batch for {self._spec.name}: columns {unknown} not declared, key or cursor {missing} absent")
        dest = self._dest
        columns = [Column(name=dest.name(c.name), type=c.type) for c in columns]
        batch = batch.rename_columns([dest.name(n) for n in batch.column_names])
        self._columns = columns
        # A column without a value in this batch travels as text: NULL casts from text into any type.
        empty = {n for n in batch.column_names if batch.column(n).null_count == batch.num_rows}
        declared = {c.name: c for c in columns}
        staged_columns = [Column(name=n, type=ColumnType.TEXT) if n in empty else declared[n] for n in batch.column_names]
        arrays = [pa.nulls(batch.num_rows, pa.string()) if n in empty else batch.column(n) for n in batch.column_names]
        arrays.append(pa.array(range(batch.num_rows), pa.int64()))
        staged = pa.Table.from_arrays(arrays, names=[*batch.column_names, sql.SEQ_COLUMN])
        ddl_first = not sql.rules(dest.dialect).transactional_ddl
        gone = deletes if deletes is not None and deletes.num_rows and self._table.primary_key else None
        had = self._known if self._known is not None else dest.columns_of(self._into)
        known_rows, self._known, self._row_count, self._altered = self._row_count, None, None, False  # until this batch commits
        saved, self._saved_state = self._saved_state, None
        inserted = updated = 0
        stamp = None  # the batch's load time, when it can be ordered after the deferred batches before it
        resolved = None  # what resolving the repeated keys of a deferred load changed, when this batch ends deferring
        merged: list[WriteCounts | None] = []  # what merging the pending rows into the table changed
        if not self._gathering and self._may_gather and (known_rows or 0) >= dest.gather_from:
            self._gathering = True  # the table has grown past matching's range: gather from this batch on
        gathering, names = self._gathering, list(batch.column_names)

        def merge_first(*, inside: bool) -> None:
            # The pending rows go into the table as it is, before it changes; the pending table is then made anew
            # with the batch's columns. `inside` the batch's transaction, or in one of their own.
            if gathering and self._pending_names is not None:
                with contextlib.nullcontext() if inside else dest.transaction():
                    merged.append(self._merge_pending())
                self._drop_pending()

        if self._pending_names not in (None, names):  # a batch of other columns: gathered apart from these
            merge_first(inside=False)
        with contextlib.ExitStack() as stack:
            staging = stack.enter_context(dest.staged(staged, staged_columns))
            stack.enter_context(self._explaining_too_long(batch))
            keys = stack.enter_context(self._staged_keys(gone)) if gone is not None else None
            if ddl_first:
                types = self._evolve(columns, empty, had, before_change=lambda: merge_first(inside=False))
                if gathering and batch.num_rows:
                    self._create_pending(names)
            with dest.transaction():
                if not ddl_first:
                    types = self._evolve(columns, empty, had, before_change=lambda: merge_first(inside=True))
                    if gathering and batch.num_rows:
                        self._create_pending(names)
                before = known_rows if known_rows is not None and not merged else self._count() if had else 0
                deferred = self._deferred
                if batch.num_rows:
                    stamp = self._stamp(batch, after=self._last_loaded if deferred else self._last_gathered)
                    alike = self._comparable_keys(staged, staged_columns, types)
                    comparable = alike and stamp is not None
                    if deferred and not comparable:
                        # Two keys the staged dedup tells apart may be one in the table, or the batch cannot be
                        # placed after the ones before it: from this batch on each batch is matched as it is
                        # written, once the keys repeated so far are resolved.
                        deferred, resolved = False, self._resolve_repeats(own_transaction=False)
                        before += resolved.inserted if resolved else 0
                    if gathering and not comparable:  # likewise: the rows gathered so far go in, then each batch is matched
                        gathering = self._may_gather = False
                        merged.append(self._merge_pending())
                        before = self._count()
                    distinct = alike and self._distinct_keys(staged)
                    if gathering:
                        self._gather(staging, staged_columns, types, distinct)
                        self._pending_rows += batch.num_rows
                    else:
                        inserted, updated = self._load(
                            staging, staged_columns, types, batch.num_rows, empty_table=before == 0, distinct=distinct, deferred=deferred
                        )
                        if inserted is None:  # a MERGE: only a count tells how many keys were new
                            inserted = self._count() - before
                if keys is not None:
                    if gathering:  # the rows gathered go in first (counted as their MERGEs would), then the keys go
                        merged.append(self._merge_pending())
                    delete = sql.delete_keys(self._into, keys, self._table.primary_key, schema=dest.schema, keys_schema=dest.staging_schema)
                    dest.execute("DELETE", self._into, delete)
                if gathering and self._pending_rows >= self.merge_every:
                    merged.append(self._merge_pending())
                last = (stamp if deferred else None) or self._last_loaded
                visible = deferred and not self._replace and last is not None  # keys may repeat in the target
                text = saved if state is None else json.dumps(mark_unresolved(state, last) if visible else state)
                if text != saved:
                    dest.save_state_text(self._stream, text)
        self._saved_state = text
        if self._pending_names is not None and not gathering:
            self._drop_pending()
        # The columns now: those it had, with the batch's as _evolve created, added or widened them (the type klx
        # asked for, which the warehouse may spell another way in information_schema: the same family either way).
        self._known = {**had, **types} if self._altered else had
        self._row_count = None if keys is not None or merged else before + inserted
        for counts in (*merged, resolved):
            if counts is not None:
                inserted, updated = inserted + counts.inserted, updated + counts.updated
        self._deferred, self._last_loaded, self._gathering = deferred, last if deferred else None, gathering
        if deferred and batch.num_rows:
            self._deferred_batches += 1
        self._last_gathered = (stamp or self._last_gathered) if gathering else None
        added = tuple(c.name for c in columns if c.name not in had) if had else ()
        return WriteCounts(inserted=inserted, updated=updated, columns_added=added)

    # Rows an incremental load gathers before merging them into the table it loads (SqlLoad.__init__): a merge
    # reads the table's keys once, so its cost per row falls as this grows; DuckDB spills a larger MERGE's
    # join past its memory_limit. bench/key_matching.py: about 18 ms a batch of 2,000 events at 1,000,000 rows.
    merge_every = 100_000

    def _create_pending(self, names: list[str]) -> None:
        """The pending table, when missing: the batch's columns, with the table's types."""
        if self._pending_names is None:
            dest = self._dest
            dest.execute("CREATE TABLE", self._pending, sql.create_table_like(self._pending, self._target, schema=dest.schema, columns=names))
            self._pending_names, self._pending_rows = names, 0

    def _drop_pending(self) -> None:
        self._dest.execute("DROP TABLE", self._pending, sql.drop_table(self._pending, schema=self._dest.schema))
        self._pending_names, self._pending_rows = None, 0

    def _gather(self, staging: str, columns: list[Column], into: dict[str, exp.DataType], distinct: bool) -> None:
        """INSERT the staged batch into the pending table, one row per key (the greatest cursor, then the later row)."""
        prepared = self._statements(staging, columns, into)
        self._dest.execute("INSERT", self._pending, prepared.gather if distinct else prepared.gather_deduplicated)

    def _statements(self, staging: str, columns: list[Column], into: dict[str, exp.DataType]) -> _Statements:
        """The statements loading this shape of staged batch: those built for the last batch when it had the same.

        They depend only on the staged columns and the table's types: those built for one batch serve the next
        ones alike (sqlglot builds and copies a 40-column MERGE in milliseconds)."""
        signature = (staging, tuple(columns), tuple(into.items()))
        if self._prepared is None or self._prepared[0] != signature:
            self._prepared = (signature, _Statements(self, staging, columns, into))
        return self._prepared[1]

    def _merge_pending(self, *, uncounted: bool = False) -> WriteCounts | None:
        """MERGE the pending rows into the table and empty the pending table; what the MERGEs of their batches
        would have counted. Runs in the caller's transaction. `uncounted`: rows another load (killed) gathered."""
        if self._pending_names is None or not (uncounted or self._pending_rows):
            return None
        dest, pending, target, schema = self._dest, self._pending, self._target, self._dest.schema
        key, cursor = self._table.primary_key, self._table.cursor
        loaded_at = self._table.loaded_at or dest.name(LOAD_ORDER)
        counts = sql.pending_counts(pending, target, key, cursor, loaded_at, schema=schema)
        [(inserted, updated)] = dest.execute("COUNT PENDING", pending, counts)
        [(repeated,)] = dest.execute("COUNT REPEATED KEYS", pending, sql.count_repeated_keys(pending, key, schema=schema))
        if repeated:  # keep of each key the row the batches' MERGEs would have left: one row per key to merge
            dest.execute("DELETE SUPERSEDED", pending, sql.delete_superseded(pending, key, cursor, loaded_at, schema=schema))
        source = sql.table_rows(pending, self._pending_names, schema=schema)
        for statement in sql.upsert(target, source, self._pending_names, key, cursor, dest.dialect, schema=schema, form=dest.upsert_form):
            dest.execute("MERGE" if isinstance(statement, exp.Merge) else statement.key.upper(), target, statement)
        dest.execute("DELETE", pending, sql.delete_all(pending, schema=schema))
        self._pending_rows = 0
        # int(): a SUM's type is the driver's (fakesnow answers floats), and these are printed and stored as counts
        return WriteCounts(inserted=int(inserted or 0), updated=int(updated or 0))

    def _stamp(self, batch: pa.Table, *, after: datetime | None) -> datetime | None:
        """The batch's load time (TableSpec.loaded_at: one per batch) when it is later than `after` (the last batch's
        this load wrote unmatched, or None)."""
        name = self._table.loaded_at
        if name is None or name not in batch.column_names:
            return None
        stamp = batch.column(name)[0].as_py()
        if not isinstance(stamp, datetime):
            return None
        stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
        return stamp if after is None or stamp > after else None

    def _count(self, prepared: bool = False) -> int:
        """The rows of the table this load writes; with `prepared`, as prepare() counted them when nothing touched it since."""
        if prepared and (rows := self._dest.prepared_count(self._into)) is not None:
            return rows
        [(rows,)] = self._dest.execute("COUNT ROWS", self._into, sql.count_rows(self._into, schema=self._dest.schema))
        return rows

    def _staged_keys(self, deletes: pa.Table) -> ContextManager[str]:
        """The keys to delete, staged like a batch (their names folded like every column)."""
        keys = deletes.rename_columns([self._dest.name(n) for n in deletes.column_names])
        arrow_to_type = {arrow: ctype for ctype, arrow in reversed(list(ARROW_TYPES.items()))}
        columns = [Column(name=f.name, type=arrow_to_type.get(f.type, ColumnType.TEXT)) for f in keys.schema]
        return self._dest.staged(keys, columns, DELETES_TABLE)

    def finish(self, state: dict[str, Any]) -> WriteCounts | None:
        """Make the load visible (a replace swaps the shadow in) and save `state`, in one transaction.

        Returns what finishing changed in the counts the writes returned, or None: resolving a deferred load's
        repeated keys (rows counted as inserted and then superseded, the updates MERGEs would have counted),
        merging the rows gathered since the last merge, and a killed load's pending rows merged at the start.
        """
        dest, schema = self._dest, self._dest.schema
        ddl: list[tuple[str, str, exp.Expr]] = []
        counts = None
        # A replace load whose shadow exists: begin() made it from the target, or a batch created it.
        shadow = self._replace and bool(self._known if self._known is not None else dest.columns_of(self._into))
        if shadow and self._deferred:
            counts = self._resolve_repeats()
        if shadow:
            swap = sql.swap_in(self._into, self._target, dest.dialect, target_exists=self._target_existed, schema=schema)
            grants = dest.grants_for(self._target, self._into) if self._target_existed else []
            ddl = [*(("GRANT", self._into, statement) for statement in grants), *(("SWAP IN", self._target, statement) for statement in swap)]
        elif self._columns and not (self._known or dest.columns_of(self._target)):  # (_known: the columns it has)
            ddl = [("CREATE TABLE", self._target, sql.create_table(self._target, self._columns, dest.dialect, schema=schema))]
        if not sql.rules(dest.dialect).transactional_ddl:
            dest.execute_ddl(ddl)
            ddl = []
        merged = None
        with dest.transaction():
            dest.execute_ddl(ddl)
            if not self._replace and self._last_loaded is not None:
                # An incremental load's deferred rows, resolved in the transaction saving the state that no longer
                # says they may repeat.
                counts = self._resolve_repeats(own_transaction=False)
            if self._gathering:  # the rows gathered since the last merge, merged with the final state
                merged = self._merge_pending()
            text = json.dumps(state)
            if text != self._saved_state:  # (the last batch committed the same state: an incremental run's usual end)
                dest.save_state_text(self._stream, text)
        if self._pending_names is not None:
            self._drop_pending()
        changed = [c for c in (self._carried, counts, merged) if c is not None]
        self._carried = None
        if not changed:
            return None
        return WriteCounts(inserted=sum(c.inserted for c in changed), updated=sum(c.updated for c in changed))

    def _resolve_repeats(self, *, own_transaction: bool = True) -> WriteCounts | None:
        """Of each key the shadow holds more than once, delete every row but the one a MERGE of the batches in
        load order would have kept; the counts this changes, or None when no key repeats (the usual case:
        one aggregate over the key columns, however many rows)."""
        dest, into, schema = self._dest, self._into, self._dest.schema
        key, cursor, loaded_at = self._table.primary_key, self._table.cursor, self._table.loaded_at
        assert loaded_at is not None
        if self._deferred_batches <= 1 and not self._left_deferred:
            return None
        with dest.frugal():  # one aggregate over every key of the table
            [(repeated,)] = dest.execute("COUNT REPEATED KEYS", into, sql.count_repeated_keys(into, key, schema=schema))
        if not repeated:
            return None
        with dest.transaction() if own_transaction else contextlib.nullcontext(), dest.frugal():
            [(removed, replaced)] = dest.execute("COUNT SUPERSEDED", into, sql.superseded_counts(into, key, cursor, loaded_at, schema=schema))
            dest.execute("DELETE SUPERSEDED", into, sql.delete_superseded(into, key, cursor, loaded_at, schema=schema))
        # The writes counted every row they inserted as new; MERGEs would have inserted each key once and
        # counted an update for every row that replaced the one kept before it.
        return WriteCounts(inserted=-int(removed or 0), updated=int(replaced or 0))

    def abort(self) -> None:
        """Roll back anything open and drop the shadow; the target table is left as it was.

        A gathering load's committed batches go into the table, as every committed batch of an incremental
        load does; should that fail too, they stay in the pending table for the stream's next load to merge.
        """
        dest = self._dest
        dest.rollback()
        if self._replace:
            dest.execute("DROP TABLE", self._into, sql.drop_table(self._into, schema=dest.schema))
        elif self._gathering and (left := dest.columns_of(self._pending)):  # read again: the failed batch may have made it
            self._pending_names = list(left)
            try:
                with dest.transaction():
                    self._merge_pending(uncounted=True)
                self._drop_pending()
            except WarehouseError as err:
                dest.rollback()
                log.warning("table %s: the rows gathered before the failure stay in %s for the next run to merge (%s)",
                            self._target, self._pending, err.message)

    def _evolve(
        self, columns: Sequence[Column], empty: set[str], existing: dict[str, exp.DataType], *, before_change: Callable[[], None] = lambda: None
    ) -> dict[str, exp.DataType]:
        """Create the table or add and widen its columns; the column type each staged value is cast into.

        An existing column keeps its type when it holds the incoming values (a RudderStack table's TIMESTAMP
        without time zone, VARCHAR, NUMERIC); otherwise it widens like any klx column. Only a type klx cannot
        write to at all stops the run. `empty` names the columns without a value in this batch; `existing` the
        table's columns now (read by write(): nothing changes them in between). `before_change` runs before the
        first statement changing the table (a gathering load merges its pending rows then, which count as the
        table's values meanwhile).
        """
        dest, into, schema, dialect = self._dest, self._into, self._dest.schema, self._dest.dialect
        # A column klx cannot write to stops the batch before anything changes: on a warehouse whose DDL commits
        # (Snowflake), columns added before reaching it would stay, though nothing of the batch loads.
        for column in columns:
            dtype = existing.get(column.name)
            if dtype is not None and column.name not in empty and sql.column_type_of(dtype, dialect) is not column.type and sql.family(dtype) is None:
                raise self._conflict(column, dtype)
        if not existing:
            self._altered = True
            before_change()
            dest.execute("CREATE TABLE", into, sql.create_table(into, columns, dialect, schema=schema))
        types: dict[str, exp.DataType] = {}
        for column in columns:
            dtype = existing.get(column.name)
            if dtype is None:
                if existing:
                    self._altered = True
                    before_change()
                    dest.execute("ADD COLUMN", into, sql.add_column(into, column, dialect, schema=schema))
                types[column.name] = sql.data_type(column.type, dialect)
            elif column.name in empty or sql.column_type_of(dtype, dialect) is column.type:
                types[column.name] = dtype  # a batch without values says nothing about the type
            elif sql.holds(dtype, column.type) and sql.column_type_of(dtype, dialect) is None:
                types[column.name] = dtype  # a type klx does not create (adopted table) is kept while it fits
            elif (current := sql.family(dtype)) is None:
                raise self._conflict(column, dtype)
            else:
                count = sql.count_values(into, column.name, schema=schema)
                [(values,)] = dest.execute("COUNT VALUES", into, count)
                if not values and column.name in (self._pending_names or ()):  # the rows not merged yet count too
                    count = sql.count_values(self._pending, column.name, schema=schema)
                    [(values,)] = dest.execute("COUNT VALUES", self._pending, count)
                wanted = column.type if values == 0 else sql.widest(current, column.type)
                if wanted is current:
                    types[column.name] = dtype
                    continue
                self._altered = True
                before_change()
                for statement in sql.widen_column(into, Column(name=column.name, type=wanted), dialect, schema=schema):
                    dest.execute("WIDEN COLUMN", into, statement)
                types[column.name] = sql.data_type(wanted, dialect)
        return types

    @contextlib.contextmanager
    def _explaining_too_long(self, batch: pa.Table) -> Iterator[None]:
        """A value of `batch` longer than its column allows (an adopted VARCHAR(n)) becomes an error naming the column.

        The warehouse names none ("value too long for type character varying(5)"): only then are the table's
        length limits read (information_schema) and compared with the batch's longest values. The batch's
        transaction has rolled back by then (on Snowflake with the rows COPYed into the staging table).
        """
        try:
            yield
        except WarehouseError as err:
            if not self._dest.refused_too_long(err):
                raise
            try:
                explained = self._too_long(batch)
            except WarehouseError:  # the error the user must see is the first one
                raise err from err.__cause__
            if explained is None:
                raise
            raise explained from err

    def _too_long(self, batch: pa.Table) -> WarehouseError | None:
        """The error naming each column of the table too short for a value of `batch`, or None when none is."""
        dest, dialect, schema = self._dest, self._dest.dialect, self._dest.schema
        read = dest.execute("READ COLUMNS", self._target, sql.length_limits(dialect), (schema, self._target))
        limits = {name: (kind, int(limit)) for name, kind, limit in read}
        over = []
        for name in batch.column_names:
            if name in limits and (length := _longest_text(batch.column(name))) > limits[name][1]:
                over.append((name, length))
        if not over:
            return None

        def declared(name: str) -> str:
            kind, limit = limits[name]
            return sql.reported_type(f"{kind}({limit})", None, None, dialect).sql(dialect)

        table = f"{schema}.{self._target}"
        if len(over) == 1:
            [(name, length)] = over
            what = f"column {name!r} of table {table} is {declared(name)}, too short for a value of {length} characters"
        else:
            listed = ", ".join(f"{name!r} {declared(name)} (a value of {length} characters)" for name, length in over)
            what = f"columns of table {table} too short for the values loaded: {listed}"
        widen = [sql.widen_column(self._target, Column(name=name, type=ColumnType.TEXT), dialect, schema=schema) for name, _ in over]
        fix = "; ".join(sql.render(statement, dialect) for statements in widen for statement in statements)
        return WarehouseError(
            f"stream {self._stream}: {what}; nothing of the batch was written",
            hint=f"widen the column{'s' if len(over) > 1 else ''} to text: {fix}; then sync again",
        )

    def _conflict(self, column: Column, dtype: exp.DataType) -> WarehouseError:
        dialect, schema = self._dest.dialect, self._dest.schema
        found, wanted = dtype.sql(dialect), sql.data_type(column.type, dialect).sql(dialect)
        # Name the table the user has: a full refresh loads into a shadow copied from it, gone after the run.
        fix = "; ".join(sql.render(s, dialect) for s in sql.widen_column(self._target, column, dialect, schema=schema))
        return WarehouseError(
            f"column {column.name!r} of table {schema}.{self._target} has type {found}, "
            f"which cannot hold the {column.type.value} values klx loads into it (klx creates {wanted})",
            hint=f"change the column's type, e.g. {fix}, or drop the column, then sync again",
        )

    def _distinct_keys(self, staged: pa.Table) -> bool:
        """Whether no two rows of the staged batch share a primary key, for keys that are _comparable_keys (the
        caller asks that first: only then does the upsert's dedup see keys as the table does).

        A Python set counts them: no query, and no pyarrow.compute (9 MB and 40 ms to import, which no run needs).
        """
        key = self._table.primary_key
        if len(key) == 1:
            return len(set(staged.column(key[0]).to_pylist())) == staged.num_rows
        return len(set(zip(*(staged.column(name).to_pylist() for name in key)))) == staged.num_rows

    def _comparable_keys(self, staged: pa.Table, columns: list[Column], into: dict[str, exp.DataType]) -> bool:
        """Whether two staged keys are equal exactly when they are equal in the table.

        The dedup partitions on the staged values and the upsert matches on the values cast to the table's
        types: only for keys that are text (or integers) on both sides are the two the same (sql.keys_alike).
        """
        key = self._table.primary_key
        if not key:
            return False
        staged_types = {c.name: c.type for c in columns}
        for name in key:
            kind = staged_types.get(name)
            if kind not in (ColumnType.TEXT, ColumnType.BIGINT) or name not in into:
                return False
            if not sql.keys_alike(into[name], kind):
                return False
            arrow = staged.schema.field(name).type
            if not (pa.types.is_string(arrow) or pa.types.is_large_string(arrow) or pa.types.is_int64(arrow)):
                return False
        return True

    def _load(
        self,
        staging: str,
        columns: list[Column],
        into: dict[str, exp.DataType],
        rows: int,
        *,
        empty_table: bool,
        distinct: bool = False,
        deferred: bool = False,
    ) -> tuple[int | None, int]:
        """Upsert the staged batch (`rows` rows) into the table, newest cursor per key (append when there is no key).

        Returns (rows inserted, rows updated); rows inserted is None after a MERGE, which only a count can tell.

        A batch whose keys are `distinct` and none of them in the table is a plain INSERT of its rows (what the
        MERGE would insert, without its dedup window and join): always so for the first batch of a full
        refresh into its empty shadow table, and for every later batch that repeats no key. Profiled on 10,000
        events in two batches (bench/engine.py's duckdb stage): the MERGE took 13.8 CPU µs a record, the
        INSERT 5.8; the dedup window alone 5.5.

        The statements are built once per shape of batch (_statements).
        """
        dest = self._dest
        prepared = self._statements(staging, columns, into)
        if not self._table.primary_key:  # no key: append
            dest.execute("INSERT", self._into, prepared.append)
            return rows, 0
        if deferred:  # keys repeated across batches are resolved at finish (_resolve_repeats)
            dest.execute("INSERT", self._into, prepared.append if distinct else prepared.append_deduplicated)
            return (rows if distinct else None), 0
        if not empty_table and [kind for kind, _ in prepared.upsert] == ["MERGE"] and sql.rules(dest.dialect).merge_counts:
            # The MERGE says what it inserted and updated: neither COUNT MATCHES (or COUNT UPDATES) before it nor
            # a COUNT of the table after it (two of a Snowflake batch's round trips). The same figures: it inserts
            # one row per new key of the deduplicated batch and updates every matched row count_updates counts.
            [(inserted, updated)] = dest.execute("MERGE", self._into, prepared.upsert[0][1])
            return int(inserted), int(updated)
        updated = 0
        if distinct:
            matched = 0
            if not empty_table:  # one query says whether any key is already in the table, and how many would change
                [(matched, changed)] = dest.execute("COUNT MATCHES", self._into, prepared.count_matches)
                updated = int(changed or 0)
            if not matched:
                dest.execute("INSERT", self._into, prepared.append)
                return rows, 0
        elif not empty_table:  # a key can only be updated when the table holds rows
            [(updated,)] = dest.execute("COUNT UPDATES", self._into, prepared.count_updates)
        for kind, statement in prepared.upsert:
            dest.execute(kind, self._into, statement)
        return None, updated


class _Statements:
    """The statements loading one shape of staged batch into a table, each built on first use.

    sqlglot builds and copies a 40-column MERGE in tens of milliseconds: a full refresh whose batches all
    go in by INSERT never builds it.
    """

    def __init__(self, load: SqlLoad, staging: str, columns: list[Column], into: dict[str, exp.DataType]) -> None:
        dest, self._load, self._names = load._dest, load, [c.name for c in columns]
        self._source = (staging, columns, dest.dialect, dest.staging_schema, into)

    def _rows(self, dedup: bool) -> exp.Select:
        staging, columns, dialect, schema, into = self._source
        table = self._load._table
        if dedup:  # one row per key, the newest
            return sql.staged_rows(staging, columns, table.primary_key, table.cursor, dialect, schema=schema, existing=into)
        return sql.staged_rows(staging, columns, (), None, dialect, schema=schema, existing=into)  # every row, cast

    def _insert(self, table: str, dedup: bool) -> exp.Insert:
        return sql.append(table, self._rows(dedup=dedup), self._names, schema=self._load._dest.schema)

    @functools.cached_property
    def append(self) -> exp.Insert:
        """INSERT every staged row: the load of a table without a key, or of a batch whose keys are new and distinct."""
        return self._insert(self._load._into, dedup=False)

    @functools.cached_property
    def append_deduplicated(self) -> exp.Insert:
        """INSERT one row per staged key (the greatest cursor, then the later row): a deferred load's batch that repeats a key."""
        return self._insert(self._load._into, dedup=True)

    @functools.cached_property
    def gather(self) -> exp.Insert:
        """INSERT every staged row into the pending table: a batch of distinct keys an incremental load gathers."""
        return self._insert(self._load._pending, dedup=False)

    @functools.cached_property
    def gather_deduplicated(self) -> exp.Insert:
        """INSERT one row per staged key into the pending table (the greatest cursor, then the later row)."""
        return self._insert(self._load._pending, dedup=True)

    @functools.cached_property
    def count_matches(self) -> exp.Select:
        """(staged rows whose key is in the table, how many of those would change): for a batch of distinct keys."""
        table = self._load._table
        return sql.count_matches(self._load._into, self._rows(dedup=False), table.primary_key, table.cursor, schema=self._load._dest.schema)

    @functools.cached_property
    def count_updates(self) -> exp.Select:
        """How many rows the upsert will change."""
        table = self._load._table
        return sql.count_updates(self._load._into, self._rows(dedup=True), table.primary_key, table.cursor, schema=self._load._dest.schema)

    @functools.cached_property
    def upsert(self) -> list[tuple[str, exp.Expr]]:
        """(kind, statement) of the upsert: one MERGE, or DELETE + INSERT."""
        load, dest = self._load, self._load._dest
        table, dialect = load._table, dest.dialect
        statements = sql.upsert(load._into, self._rows(dedup=True), self._names, table.primary_key, table.cursor, dialect, schema=dest.schema, form=dest.upsert_form)
        return [("MERGE" if isinstance(statement, exp.Merge) else statement.key.upper(), statement) for statement in statements]


def _longest_text(values: pa.ChunkedArray) -> int:
    """The characters of the longest of `values` as text: strings (text and JSON) as they are, integers as their
    digits; 0 for other types, whose text each warehouse writes its own way. Read once, when a load has failed."""
    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return max((len(value) for value in values.to_pylist() if value is not None), default=0)
    if pa.types.is_integer(kind):
        return max((len(str(value)) for value in values.to_pylist() if value is not None), default=0)
    return 0
