"""Moving running runs to another version of the same orchestration (instance migration).

A plan maps the old version's stage and step keys to the new one's: by key unless told otherwise
(`stages={"review": "approval"}`, `steps={"check": "verify"}` for renames). `migration_preview`
says, for every open run of the old version, whether it can move and, if not, why; nothing is
changed. `migration_apply` moves those that can, in batches, each run in a transaction of its own
under its run lock (checked again there: a run that moved on meanwhile is judged as it is now),
with an `orchestration.run.migrated` event each. A refused run is left exactly as it was.

A run can move when, in the new version:
- its current stage exists (by key or mapping);
- every step of that stage it has a step run for exists, of the same kind (an interactive step
  mid-screen-flow keeps its work item and the screen flow version it started with);
- that stage has no step the run has no step run for (a step added to the stage in progress:
  migrate after the stage, or add it to a later one);
- no variable the run holds has changed type.
What moves: the run's version; the keys of its stage and step runs and of its step outputs
(renamed as mapped). Statuses, work items, events and variables' values stay as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

from .. import engine
from ..models import OrchestrationVersion, Run, RunStatus, StageRun, StepRun
from .common import PERM_IMPORT, _require, run_event_add

if TYPE_CHECKING:
    from .common import Actor

log = logging.getLogger(__name__)

PERM_MIGRATE = PERM_IMPORT  # who may change what runs run on: who imports definitions
OPEN = (RunStatus.IN_PROGRESS, RunStatus.SUSPENDED, RunStatus.ERROR, RunStatus.NOT_STARTED)
BATCH = 200


@dataclass(frozen=True)
class Mapping:
    stages: dict[str, str] = field(default_factory=dict)
    steps: dict[str, str] = field(default_factory=dict)

    def stage(self, key: str) -> str:
        return self.stages.get(key, key)

    def step(self, key: str) -> str:
        return self.steps.get(key, key)


@dataclass
class Preview:
    source: OrchestrationVersion
    target: OrchestrationVersion
    movable: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)  # run id -> why

    @property
    def reasons(self) -> dict[str, int]:
        """Each reason with how many runs it holds back."""
        out: dict[str, int] = {}
        for why in self.refused.values():
            out[why] = out.get(why, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


@dataclass
class Outcome:
    migrated: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)


def _versions(source: OrchestrationVersion, target: OrchestrationVersion) -> None:
    if source.orchestration_id != target.orchestration_id:
        raise ValueError("both versions must be of the same orchestration")
    if source.pk == target.pk:
        raise ValueError("the runs are on that version already: choose another one")


def _verdict(
    run: Run, stage_keys: dict[int, str], steps: list[StepRun], target_doc: Any, mapping: Mapping
) -> str:
    """Why `run` cannot move to `target_doc`, or "" when it can."""
    new_vars = {v.name: v.type for v in target_doc.variables}
    old_vars = {v.name: v.type for v in engine.orchestration_doc(run.version).variables}
    for name in run.variables:
        if name in new_vars and name in old_vars and new_vars[name] != old_vars[name]:
            return f"variable '{name}' changes type ({old_vars[name]} → {new_vars[name]})"
    if not run.current_stage:
        return ""  # not started yet: it starts on the new version's first stage
    stage_key = mapping.stage(run.current_stage)
    stage = next((s for s in target_doc.stages if s.key == stage_key), None)
    if stage is None:
        return f"its current stage '{run.current_stage}' is not in the new version (map it to one)"
    current = [sr for sr in steps if stage_keys.get(sr.stage_run_id) == run.current_stage]
    current_stage_run = max((sr.stage_run_id for sr in current), default=None)
    current = [sr for sr in current if sr.stage_run_id == current_stage_run]
    new_steps = {s.key: s for s in stage.steps}
    for sr in current:
        new = new_steps.get(mapping.step(sr.key))
        if new is None:
            return f"step '{sr.key}' of its current stage is not in the new version (map it to one)"
        if new.kind != sr.kind:
            return f"step '{sr.key}' changes kind ({sr.kind} → {new.kind}) while its stage is in progress"
    have = {mapping.step(sr.key) for sr in current}
    added = [k for k in new_steps if k not in have]
    if current and added:
        return f"the new version adds step '{added[0]}' to its stage in progress (migrate after that stage)"
    return ""


def _load(run_ids: list[int]) -> tuple[dict[int, Run], dict[int, str], dict[int, list[StepRun]]]:
    # The version's document is not read: parsed definitions are cached by id and checksum, and
    # decoding the same JSON for every run was most of the time a batch took.
    runs = {
        r.pk: r
        for r in Run.objects.select_related("version").defer("version__document").filter(pk__in=run_ids)
    }
    return (runs, *_children(run_ids))


def _children(run_ids: list[int]) -> tuple[dict[int, str], dict[int, list[StepRun]]]:
    """The runs' stage run keys (by stage run id) and step runs (by run id)."""
    stage_keys = dict(StageRun.objects.filter(run_id__in=run_ids).values_list("pk", "key"))
    steps: dict[int, list[StepRun]] = {pk: [] for pk in run_ids}
    for sr in StepRun.objects.filter(run_id__in=run_ids).only("pk", "run_id", "stage_run_id", "key", "kind"):
        steps[sr.run_id].append(sr)
    return stage_keys, steps


def migration_preview(
    *, source: OrchestrationVersion, target: OrchestrationVersion, mapping: Mapping | None = None
) -> Preview:
    """Which open runs of `source` can move to `target`, and why the others cannot. Reads only;
    a fixed number of queries per BATCH runs."""
    _versions(source, target)
    mapping = mapping or Mapping()
    target_doc = engine.orchestration_doc(target)
    preview = Preview(source=source, target=target)
    ids = list(
        Run.objects.filter(version=source, status__in=OPEN).order_by("pk").values_list("pk", flat=True)
    )
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        runs, stage_keys, steps = _load(chunk)
        for pk in chunk:
            why = _verdict(runs[pk], stage_keys, steps[pk], target_doc, mapping)
            if why:
                preview.refused[pk] = why
            else:
                preview.movable.append(pk)
    return preview


def migration_apply(
    *,
    source: OrchestrationVersion,
    target: OrchestrationVersion,
    mapping: Mapping | None = None,
    actor: Actor = None,
    run_ids: Iterable[int] | None = None,
) -> Outcome:
    """Move the open runs of `source` that can move (or only `run_ids` of them) to `target`."""
    actor_id = _require(actor, PERM_MIGRATE)
    _versions(source, target)
    mapping = mapping or Mapping()
    target_doc = engine.orchestration_doc(target)
    ids = (
        sorted(set(run_ids))
        if run_ids is not None
        else list(
            Run.objects.filter(version=source, status__in=OPEN).order_by("pk").values_list("pk", flat=True)
        )
    )
    outcome = Outcome()
    for pk in ids:
        with transaction.atomic():
            try:
                # The run as it is now, locked (with its version, the document deferred).
                run = engine.lock_run(pk)
            except Run.DoesNotExist:  # an id asked for (run_ids) that is no run, or was deleted
                outcome.refused[pk] = "it is no longer an open run of that version"
                continue
            if run.version_id != source.pk or run.status not in OPEN:
                outcome.refused[pk] = "it is no longer an open run of that version"
                continue
            stage_keys, steps = _children([pk])
            why = _verdict(run, stage_keys, steps[pk], target_doc, mapping)
            if why:
                outcome.refused[pk] = why
                continue
            _move(run, steps[pk], stage_keys, target, mapping, actor_id)
            outcome.migrated.append(pk)
    log.info(
        "migrated %s runs of %s to v%s (%s refused)",
        len(outcome.migrated),
        source,
        target.number,
        len(outcome.refused),
    )
    return outcome


def _move(
    run: Run,
    steps: list[StepRun],
    stage_keys: dict[int, str],
    target: OrchestrationVersion,
    mapping: Mapping,
    actor_id: int | None,
) -> None:
    renamed_stages = {k: mapping.stage(k) for k in set(stage_keys.values()) if mapping.stage(k) != k}
    renamed_steps = {sr.key: mapping.step(sr.key) for sr in steps if mapping.step(sr.key) != sr.key}
    for old, new in renamed_stages.items():
        StageRun.objects.filter(run_id=run.pk, key=old).update(key=new)
    for old, new in renamed_steps.items():
        StepRun.objects.filter(run_id=run.pk, key=old).update(key=new)
    outputs = {mapping.step(k): v for k, v in (run.step_outputs or {}).items()}
    Run.objects.filter(pk=run.pk).update(
        version=target,
        current_stage=mapping.stage(run.current_stage) if run.current_stage else run.current_stage,
        step_outputs=outputs,
    )
    run_event_add(
        run_id=run.pk,
        name="orchestration.run.migrated",
        actor_id=actor_id,
        payload={
            "from": run.version.number,
            "to": target.number,
            "stages": renamed_stages,
            "steps": renamed_steps,
        },
    )


def mapping_unknown(
    *, source: OrchestrationVersion, target: OrchestrationVersion, mapping: Mapping
) -> dict[str, str]:
    """The mapping's entries that name a stage or step its version does not have (a typo would
    otherwise map nothing, silently): `{"stages.reviw": "v1 has no stage 'reviw'", ...}`."""
    old, new = engine.orchestration_doc(source), engine.orchestration_doc(target)
    problems: dict[str, str] = {}
    for what, pairs, keys_of in (
        ("stages", mapping.stages, lambda doc: {s.key for s in doc.stages}),
        ("steps", mapping.steps, lambda doc: {st.key for s in doc.stages for st in s.steps}),
    ):
        old_keys, new_keys = keys_of(old), keys_of(new)
        label = what[:-1]
        for key, to in pairs.items():
            if key not in old_keys:
                problems[f"{what}.{key}"] = f"v{source.number} has no {label} '{key}'"
            elif to not in new_keys:
                problems[f"{what}.{key}"] = f"v{target.number} has no {label} '{to}'"
    return problems


def parse_pairs(pairs: Iterable[str], what: str) -> dict[str, str]:
    """ "old=new" pairs (the command line's --map-stage / --map-step)."""
    out = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ValueError(f"--map-{what} {pair!r}: write it old=new")
        out[old.strip()] = new.strip()
    return out


__all__ = [
    "Mapping",
    "Outcome",
    "PermissionDenied",
    "Preview",
    "mapping_unknown",
    "migration_apply",
    "migration_preview",
    "parse_pairs",
]
