"""The engine's hottest reads as plain SQL, turned into model instances as the ORM would.

Every step transition locks its run, loads the stage in progress with its steps and looks up the
active versions of the stage's flows. Through the QuerySet API each of these statements cost
0.5 to 1 ms of Python per call (building the query, compiling it, walking select_related), several
times what PostgreSQL spends running it; a W1 run makes eleven of them. Here the SQL is written
once per process from the models' metadata (table and column names, never values) and rows
become instances through `Model.from_db` after the same converters the ORM applies (JSON text,
SQLite's datetimes…), so callers get ordinary model instances. bench/README.md has the figures.

The statements are the ones the QuerySets produced (same joins, same index use); the tests of
the engine run through them on PostgreSQL and SQLite.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import connections, models
from django.db.models.base import ModelState

from .models import (
    ExecState,
    Flow,
    FlowVersion,
    Orchestration,
    OrchestrationVersion,
    Run,
    StageRun,
    StageStatus,
    StepRun,
)

Converter = Callable[[Any, Any, Any], Any]
Converters = tuple[Converter, ...]


@functools.cache
def _converters(model: type[models.Model], vendor: str) -> tuple[Converters | None, ...]:
    """Per concrete field, the converters the ORM applies to a value read from the database
    (backend ones first, then the field's own `from_db_value`), or None for none."""
    connection = connections[model._default_manager.db]
    out: list[Converters | None] = []
    for field in model._meta.concrete_fields:
        col = field.get_col(model._meta.db_table)
        found = tuple(connection.ops.get_db_converters(col)) + tuple(field.get_db_converters(connection))
        out.append(found or None)
    return tuple(out)


@functools.cache
def _read_fields(model: type[models.Model]) -> tuple[Any, ...]:
    """The concrete fields read; a version's document is left out (deferred): parsed
    definitions are cached by version id and checksum (engine._parsed)."""
    skip = "document" if model in (OrchestrationVersion, FlowVersion) else None
    return tuple(f for f in model._meta.concrete_fields if f.attname != skip)


def _columns(model: type[models.Model], alias: str, connection: Any) -> str:
    qn = connection.ops.quote_name
    return ", ".join(f"{alias}.{qn(f.column)}" for f in _read_fields(model))


@functools.cache
def _plan(model: type[models.Model], vendor: str) -> tuple[tuple[str, Converters | None, Any], ...]:
    """Per field read: its attribute name, its converters and the column they are given."""
    read = {f.attname for f in _read_fields(model)}
    return tuple(
        (field.attname, conv, field.get_col(model._meta.db_table) if conv else None)
        for field, conv in zip(model._meta.concrete_fields, _converters(model, vendor), strict=True)
        if field.attname in read
    )


def instance(model: type[models.Model], values: Sequence[Any], connection: Any) -> Any:
    """A model instance from the values of the columns `_columns` reads, in field order; a
    column not read is deferred (loaded if ever touched).

    What Model.from_db builds, without its __init__ (a walk over every field with setattr, and
    the post_init signal, which no receiver listens to for these models: see test_hot.py): the
    values go straight into the instance's __dict__, where the fields' descriptors read them;
    a field missing there is deferred, as Django defers."""
    obj = model.__new__(model)
    data = obj.__dict__
    for (attname, conv, col), value in zip(_plan(model, connection.vendor), values, strict=True):
        if conv is not None and value is not None:
            for c in conv:
                value = c(value, col, connection)
        data[attname] = value
    state = ModelState()
    state.adding = False
    state.db = connection.alias
    data["_state"] = state
    return obj


@functools.cache
def _lock_sql(vendor: str) -> str:
    connection = connections[Run.objects.db]
    qn = connection.ops.quote_name
    lock = " FOR UPDATE OF r" if connection.features.has_select_for_update_of else ""
    return (
        f"SELECT {_columns(Run, 'r', connection)}, {_columns(OrchestrationVersion, 'v', connection)}"  # noqa: S608
        f" FROM {qn(Run._meta.db_table)} r"
        f" INNER JOIN {qn(OrchestrationVersion._meta.db_table)} v ON v.id = r.version_id"
        f" WHERE r.id = %s{lock}"
    )


def lock_run(run_id: int) -> Run:
    """The run, its row locked until the transaction ends, with its version (document deferred).

    The stage and its steps are read by the next statement, never joined into this one: a
    SELECT … FOR UPDATE that waits for the lock re-reads the locked row when it gets it, but
    the rows it joins come from the snapshot taken before it waited, so a pass would see its
    steps as they were before the transaction it waited for (a step started twice: the twenty
    advances of tests/orchestration/test_concurrency.py catch it)."""
    connection = connections[Run.objects.db]
    with connection.cursor() as cursor:
        cursor.execute(_lock_sql(connection.vendor), [run_id])
        row = cursor.fetchone()
    if row is None:
        raise Run.DoesNotExist(f"no run {run_id}")
    n = len(_read_fields(Run))
    run: Run = instance(Run, row[:n], connection)
    run.version = instance(OrchestrationVersion, row[n:], connection)
    return run


@functools.cache
def _stage_sql(vendor: str) -> str:
    connection = connections[StepRun.objects.db]
    qn = connection.ops.quote_name
    # `g.run_id` as well as `s.run_id`: PostgreSQL then finds the stage through the partial
    # unique index of stages in progress (one per run) instead of scanning all of them.
    return (
        f"SELECT {_columns(StepRun, 's', connection)}, {_columns(StageRun, 'g', connection)}"  # noqa: S608
        f" FROM {qn(StepRun._meta.db_table)} s"
        f" INNER JOIN {qn(StageRun._meta.db_table)} g ON g.id = s.stage_run_id"
        " WHERE s.run_id = %s AND g.run_id = %s AND g.status = %s ORDER BY s.id"
    )


def stage_in_progress(run_id: int) -> tuple[StageRun | None, list[StepRun]]:
    """The run's stage in progress (None if none) and its step runs, in id order."""
    connection = connections[StepRun.objects.db]
    with connection.cursor() as cursor:
        cursor.execute(_stage_sql(connection.vendor), [run_id, run_id, StageStatus.IN_PROGRESS])
        rows = cursor.fetchall()
    if not rows:
        return None, []
    n = len(_read_fields(StepRun))
    stage: StageRun = instance(StageRun, rows[0][n:], connection)
    steps = []
    for row in rows:
        step: StepRun = instance(StepRun, row[:n], connection)
        step.stage_run = stage
        steps.append(step)
    return stage, steps


@functools.cache
def _flows_sql(vendor: str, count: int) -> str:
    connection = connections[FlowVersion.objects.db]
    qn = connection.ops.quote_name
    return (
        f"SELECT {_columns(FlowVersion, 'v', connection)}, f.{qn('api_name')}"  # noqa: S608 (names only)
        f" FROM {qn(FlowVersion._meta.db_table)} v"
        f" INNER JOIN {qn(Flow._meta.db_table)} f ON f.id = v.flow_id"
        f" WHERE v.is_active AND f.api_name IN ({', '.join(['%s'] * count)})"
    )


def active_flow_versions(api_names: Iterable[str]) -> dict[str, FlowVersion]:
    """The active versions of these flows, by api name (absent: no active version)."""
    names = sorted(set(api_names))
    if not names:
        return {}
    connection = connections[FlowVersion.objects.db]
    with connection.cursor() as cursor:
        cursor.execute(_flows_sql(connection.vendor, len(names)), names)
        rows = cursor.fetchall()
    return {row[-1]: instance(FlowVersion, row[:-1], connection) for row in rows}


def _claim_predicate(step_run_id: int, attempt: int) -> dict[str, Any]:
    """The step run a worker may claim for this attempt: in progress and queued for exactly this
    attempt (transitions.EXEC: queued -> running). The one statement of it, for both paths."""
    return {
        "id": step_run_id,
        "attempts": attempt,
        "status": StageStatus.IN_PROGRESS,
        "exec_state": ExecState.QUEUED,
    }


@functools.cache
def _claim_sql(vendor: str) -> str:
    connection = connections[StepRun.objects.db]
    qn = connection.ops.quote_name
    returning = ", ".join(qn(f.column) for f in _read_fields(StepRun))
    where = " AND ".join(f"{qn(column)} = %s" for column in _claim_predicate(0, 0))
    return (
        f"WITH c AS (UPDATE {qn(StepRun._meta.db_table)} SET exec_state = %s, claimed_at = %s"  # noqa: S608
        f" WHERE {where} RETURNING {returning})"
        f" SELECT {_columns(StepRun, 'c', connection)}, {_columns(Run, 'r', connection)},"
        f" v.{qn('checksum')}, fv.{qn('checksum')} FROM c"
        f" INNER JOIN {qn(Run._meta.db_table)} r ON r.id = c.run_id"
        f" INNER JOIN {qn(OrchestrationVersion._meta.db_table)} v ON v.id = r.version_id"
        f" LEFT JOIN {qn(FlowVersion._meta.db_table)} fv ON fv.id = c.flow_version_id"
    )


def claim_step(step_run_id: int, attempt: int, *, now: dt.datetime) -> StepRun | None:
    """Claim this attempt of a queued step (a compare-and-swap on attempts and exec_state,
    committed at once) and read the step with its run; None when it was not queued for this
    attempt (a duplicate or stale delivery).

    PostgreSQL: the claim and the read are one statement, `UPDATE … RETURNING` joined to the run;
    the versions come with their id and checksum only (the engine's parsed definitions are
    cached by those), their other fields load if touched. Elsewhere (SQLite has no UPDATE in a
    WITH): the same predicate as an ORM update, then a read."""
    connection = connections[StepRun.objects.db]
    predicate = _claim_predicate(step_run_id, attempt)
    if connection.vendor != "postgresql":
        claimed = StepRun.objects.filter(**predicate).update(exec_state=ExecState.RUNNING, claimed_at=now)
        if claimed != 1:
            return None
        return StepRun.objects.select_related("run", "flow_version", "run__version").get(pk=step_run_id)
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(connection.vendor), [ExecState.RUNNING, now, *predicate.values()])
        row = cursor.fetchone()
    if row is None:
        return None
    n = len(_read_fields(StepRun))
    m = n + len(_read_fields(Run))
    step: StepRun = instance(StepRun, row[:n], connection)
    run: Run = instance(Run, row[n:m], connection)
    version_checksum, flow_checksum = row[m:]
    run.version = OrchestrationVersion.from_db(
        connection.alias, ["id", "checksum"], [run.version_id, version_checksum]
    )
    if step.flow_version_id is not None:
        step.flow_version = FlowVersion.from_db(
            connection.alias, ["id", "checksum"], [step.flow_version_id, flow_checksum]
        )
    step.run = run
    return step


# --- writes -----------------------------------------------------------------------------------
#
# Model.save(), QuerySet.create() and bulk_create() spend 0.5 to 1.5 ms of Python per statement
# on this path (signals, field walks, query compilation), several times PostgreSQL's own cost.
# The engine's rows are written here instead, with the values the ORM would write (each field's
# pre_save, so auto_now_add is honoured, then get_db_prep_save). No model signals are sent: the
# project connects none to these models, and tests/orchestration/test_hot.py fails if one is.


@functools.cache
def _insert_plan(model: Any, vendor: str) -> tuple[tuple[Any, ...], str, str, str]:
    connection = connections[model._default_manager.db]
    qn: Callable[[Any], str] = connection.ops.quote_name
    fields = tuple(f for f in model._meta.concrete_fields if not f.primary_key)
    columns = ", ".join(qn(f.column) for f in fields)
    head = f"INSERT INTO {qn(model._meta.db_table)} ({columns}) VALUES "  # noqa: S608 (names only)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return fields, head, row, f" RETURNING {qn(model._meta.pk.column)}"


def insert(objs: Sequence[models.Model]) -> None:
    """INSERT these new instances of one model in one statement and set their primary keys
    (what bulk_create does, for less than half its Python)."""
    if not objs:
        return
    model: Any = type(objs[0])
    connection = connections[model._default_manager.db]
    fields, head, row, returning = _insert_plan(model, connection.vendor)
    params: list[Any] = []
    for obj in objs:
        params.extend(f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(head + ", ".join([row] * len(objs)) + returning, params)
        ids = cursor.fetchall()
    for obj, (pk,) in zip(objs, ids, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias


@functools.cache
def _update_sql(model: Any, vendor: str, fields: tuple[str, ...]) -> tuple[tuple[Any, ...], str]:
    connection = connections[model._default_manager.db]
    qn: Callable[[Any], str] = connection.ops.quote_name
    concrete: tuple[Any, ...] = tuple(model._meta.get_field(name) for name in fields)
    sets = ", ".join(f"{qn(f.column)} = %s" for f in concrete)
    pk = qn(model._meta.pk.column)
    return concrete, f"UPDATE {qn(model._meta.db_table)} SET {sets} WHERE {pk} = %s"  # noqa: S608


def update(obj: models.Model, fields: Iterable[str]) -> None:
    """UPDATE these fields of one saved instance (what save(update_fields=…) writes)."""
    names = tuple(sorted(fields))
    if not names:
        return
    connection = connections[obj._state.db or type(obj)._default_manager.db]
    concrete, sql = _update_sql(type(obj), connection.vendor, names)
    params = [f.get_db_prep_save(f.pre_save(obj, False), connection) for f in concrete]
    params.append(obj.pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@functools.cache
def _first_sql(model: Any, vendor: str, where: tuple[str, ...]) -> str:
    connection = connections[model._default_manager.db]
    qn: Callable[[Any], str] = connection.ops.quote_name
    conditions = " AND ".join(f"t.{qn(model._meta.get_field(name).column)} = %s" for name in where)
    pk = qn(model._meta.pk.column)
    return (
        f"SELECT {_columns(model, 't', connection)} FROM {qn(model._meta.db_table)} t"  # noqa: S608
        f" WHERE {conditions} ORDER BY t.{pk} LIMIT 1"
    )


def first(model: Any, **where: Any) -> Any:
    """The first row (by primary key) whose fields equal these values, or None: what
    `model.objects.filter(**where).order_by("pk").first()` returns, for plain equalities."""
    connection = connections[model._default_manager.db]
    names = tuple(sorted(where))
    with connection.cursor() as cursor:
        cursor.execute(_first_sql(model, connection.vendor, names), [where[n] for n in names])
        row = cursor.fetchone()
    return None if row is None else instance(model, row, connection)


@functools.cache
def _get_sql(model: Any, vendor: str, join: tuple[str, ...]) -> tuple[Any, ...]:
    connection = connections[model._default_manager.db]
    qn: Callable[[Any], str] = connection.ops.quote_name
    pk = qn(model._meta.pk.column)
    cols = [_columns(model, "t", connection)]
    joins = []
    targets = []
    for i, name in enumerate(join):
        fk: Any = model._meta.get_field(name)
        target: Any = fk.related_model
        kind = "LEFT JOIN" if fk.null else "INNER JOIN"
        on = f"j{i}.{qn(target._meta.pk.column)} = t.{qn(fk.column)}"
        joins.append(f" {kind} {qn(target._meta.db_table)} j{i} ON {on}")
        cols.append(_columns(target, f"j{i}", connection))
        targets.append((name, target))
    sql = (
        f"SELECT {', '.join(cols)} FROM {qn(model._meta.db_table)} t{''.join(joins)}"  # noqa: S608
        f" WHERE t.{pk} = %s"
    )
    return sql, tuple(targets)


def get(model: Any, pk: Any, *, join: Sequence[str] = ()) -> Any:
    """One row by primary key as an instance, with the rows of the foreign keys in `join`
    attached (select_related, one level); raises model.DoesNotExist."""
    connection = connections[model._default_manager.db]
    sql, targets = _get_sql(model, connection.vendor, tuple(join))
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk])
        row = cursor.fetchone()
    if row is None:
        raise model.DoesNotExist(f"no {model._meta.model_name} {pk}")
    at = len(_read_fields(model))
    obj = instance(model, row[:at], connection)
    for name, target in targets:
        width = len(_read_fields(target))
        values = row[at : at + width]
        at += width
        setattr(obj, name, None if values[0] is None else instance(target, values, connection))
    return obj


@functools.cache
def _active_version_sql(vendor: str) -> str:
    connection = connections[OrchestrationVersion.objects.db]
    qn = connection.ops.quote_name
    columns = f"{_columns(OrchestrationVersion, 'v', connection)}, {_columns(Orchestration, 'o', connection)}"
    return (
        f"SELECT {columns}"  # noqa: S608 (names from the models)
        f" FROM {qn(OrchestrationVersion._meta.db_table)} v"
        f" INNER JOIN {qn(Orchestration._meta.db_table)} o ON o.id = v.orchestration_id"
        " WHERE o.api_name = %s AND v.is_active"
    )


def active_version(api_name: str) -> OrchestrationVersion | None:
    """The active version of an orchestration with the orchestration (its document deferred:
    parsed definitions are cached by id and checksum), or None."""
    connection = connections[OrchestrationVersion.objects.db]
    with connection.cursor() as cursor:
        cursor.execute(_active_version_sql(connection.vendor), [api_name])
        row = cursor.fetchone()
    if row is None:
        return None
    n = len(_read_fields(OrchestrationVersion))
    version: OrchestrationVersion = instance(OrchestrationVersion, row[:n], connection)
    version.orchestration = instance(Orchestration, row[n:], connection)
    return version


def update_many(rows: list[Any], fields: list[str]) -> None:
    """These fields of several rows of one model: one UPDATE … FROM (VALUES …) on PostgreSQL
    (Django's bulk_update builds a CASE per field and row, which costs more CPU than the
    statements it saves); one `update` per row elsewhere, or for a single row."""
    model = type(rows[0])
    connection = connections[model.objects.db]
    if len(rows) == 1 or connection.vendor != "postgresql":
        for row_ in rows:
            update(row_, fields)
        return
    qn = connection.ops.quote_name
    columns: list[Any] = [model._meta.get_field(f) for f in fields]  # concrete fields
    # Typed placeholders: VALUES has no column types of its own (NULLs, jsonb).
    row = ", ".join(["%s::bigint", *(f"%s::{c.db_type(connection)}" for c in columns)])
    params: list[Any] = []
    for obj in rows:
        params.append(obj.pk)
        params.extend(c.get_db_prep_save(getattr(obj, c.attname), connection) for c in columns)
    names = ", ".join(["id", *(qn(c.column) for c in columns)])
    assignments = ", ".join(f"{qn(c.column)} = v.{qn(c.column)}" for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {qn(model._meta.db_table)} AS t SET {assignments} "  # noqa: S608 (names from the model)
            f"FROM (VALUES {', '.join(f'({row})' for _ in rows)}) AS v({names}) WHERE t.id = v.id",
            params,
        )
