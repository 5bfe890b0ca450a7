"""The builder's pages (/builder/): the list of drafts with the ways to start one, and one page
per draft: its outline (settings, start, variables, stages and steps, flows with their screens,
fields and actions), the form of the element chosen (`?el=`), the live diagram (its stages and
steps open their forms), the problems on each element, undo and redo, the YAML view, and
activation. Every change is a POST to `edit/` naming an operation (ops.py) and the revision
the page showed; with htmx the page's builder region is swapped in place, without it the
browser is redirected back. Everything needs `orchestration.change_orchestration`."""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from pydantic import ValidationError

from ..definitions import Orchestration as OrchestrationDoc
from ..models import Draft, Orchestration, OrchestrationVersion
from ..views.definitions import VIEW_PERMS
from ..views.run_graph import definition_graph
from . import forms as f
from . import ops
from .drafts import (
    PERM_BUILD,
    BuilderError,
    Problem,
    can_redo,
    draft_activate,
    draft_clone,
    draft_edit,
    draft_from_version,
    draft_new,
    draft_problems,
    draft_redo,
    draft_set_yaml,
    draft_undo,
    draft_yaml,
)
from .forms import sub

TEMPLATE = "orchestration/builder/draft.html"


def _require(request: HttpRequest) -> None:
    if not request.user.has_perm(PERM_BUILD):
        raise PermissionDenied(f"you need the permission {PERM_BUILD!r}")


def _draft(pk: int) -> Draft:
    return get_object_or_404(Draft, pk=pk)


# --- the list ------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "HEAD"])
def draft_list(request: HttpRequest) -> HttpResponse:
    _require(request)
    drafts = Draft.objects.select_related("created_by", "activated_version").order_by("-updated_at")[:100]
    orchestrations = (
        Orchestration.objects.order_by("api_name").prefetch_related("versions").only("api_name", "label")
    )
    return render(
        request,
        "orchestration/builder/list.html",
        {"drafts": drafts, "orchestrations": orchestrations, "record_types": _record_types()},
    )


def _record_types() -> list[str]:
    from django.apps import apps

    if not apps.is_installed("records"):
        return []
    model = apps.get_model("records", "RecordType")
    return list(model.objects.order_by("api_name").values_list("api_name", flat=True))


def _open(draft: Draft, el: str = "") -> HttpResponse:
    url = reverse("builder:draft", args=[draft.pk])
    return redirect(f"{url}?{urlencode({'el': el})}" if el else url)


@login_required
@require_POST
def draft_create(request: HttpRequest) -> HttpResponse:
    _require(request)
    p = request.POST
    try:
        if p.get("from_version"):
            version = get_object_or_404(OrchestrationVersion, pk=p["from_version"])
            draft = draft_from_version(version=version, actor=request.user)
        elif p.get("clone"):
            source = get_object_or_404(Orchestration, api_name=p["clone"])
            draft = draft_clone(
                orchestration=source, api_name=p.get("api_name", "").strip(), actor=request.user
            )
        else:
            draft = draft_new(
                api_name=p.get("api_name", "").strip(),
                label=p.get("label", "").strip(),
                record_type=p.get("record_type", "").strip(),
                actor=request.user,
            )
    except BuilderError as exc:
        messages.error(request, str(exc))
        return redirect("builder:list")
    return _open(draft)


# --- one draft -----------------------------------------------------------------------------------


def _parsed(docs: dict[str, Any]) -> OrchestrationDoc | None:
    """The orchestration parsed for the diagram. A step the model refuses (a new interactive
    step has no flow and no assignee yet) is drawn by a stand-in of its key, label and kind, so
    that the diagram does not vanish while the step is being filled in."""
    o = docs.get("orchestration") or {}
    for _ in range(3):  # a stand-in may uncover another step's error
        try:
            return OrchestrationDoc.model_validate(o)
        except ValidationError as exc:
            stood_in = _stand_ins(o, exc)
        except Exception:
            return None
        if stood_in is None:
            return None
        o = stood_in
    return None


def _stand_ins(o: dict[str, Any], exc: ValidationError) -> dict[str, Any] | None:
    """A copy of `o` with each step an error is on replaced by a stand-in, or None when an error
    is elsewhere (the diagram is then not drawn)."""
    out = copy.deepcopy(o)
    for error in exc.errors():
        loc = error["loc"]
        if not (len(loc) >= 4 and loc[0] == "stages" and loc[2] == "steps"):
            return None
        try:
            sp = out["stages"][loc[1]]["steps"][loc[3]]
        except (KeyError, IndexError, TypeError):
            return None
        if not isinstance(sp, dict):
            return None
        stand_in = {k: sp[k] for k in ("key", "label", "kind") if k in sp}
        if stand_in.get("kind") == "interactive":
            stand_in.update(flow="draft_stand_in", assignee={"user": "draft_stand_in"})
        elif stand_in.get("kind") == "background":
            stand_in["flow"] = "draft_stand_in"
        else:
            stand_in.update(kind="wait", wait={"for": "1h"})
        if stand_in == sp:
            return None
        out["stages"][loc[1]]["steps"][loc[3]] = stand_in
    return out


def _names(docs: dict[str, Any]) -> list[str]:
    """What expressions can name: the datalist of the expression fields."""
    o = docs.get("orchestration") or {}
    names = [f"vars.{v.get('name')}" for v in o.get("variables") or [] if isinstance(v, dict)]
    start = sub(o, "start")
    names += [f"inputs.{v.get('name')}" for v in start.get("inputs") or [] if isinstance(v, dict)]
    record_type = start.get("record_type")
    if record_type:
        from django.apps import apps

        if apps.is_installed("records"):
            rt = apps.get_model("records", "RecordType").objects.filter(api_name=record_type).first()
            names += ["record.name", *(f"record.{fd.get('name')}" for fd in (rt.fields if rt else []) or [])]
    flows = docs.get("flows") or {}
    for st in o.get("stages") or []:
        for sp in st.get("steps") or [] if isinstance(st, dict) else []:
            flow = flows.get(sp.get("flow")) if isinstance(sp, dict) else None
            outputs: list[str] = []
            if isinstance(flow, dict) and flow.get("kind") == "screen_flow":
                outputs = [fd.get("name") for s in flow.get("screens") or [] for fd in s.get("fields") or []]
            elif isinstance(flow, dict):
                outputs = [out.get("name") for out in flow.get("outputs") or []]
            names += [f"steps.{sp.get('key')}.{n}" for n in outputs]
    return sorted(set(names))


def _by_element(problems: list[Problem]) -> dict[str, list[Problem]]:
    out: dict[str, list[Problem]] = {}
    for p in problems:
        out.setdefault(p.element, []).append(p)
        if p.element.startswith(("step:", "screen:", "field:", "action:")):  # counted on the parent too
            kind, _, rest = p.element.partition(":")
            parent = f"stage:{rest.split('/')[0]}" if kind == "step" else f"flow:{rest.split('/')[0]}"
            out.setdefault(parent + "+", []).append(p)
    return out


def _element_context(docs: dict[str, Any], el: str, data: Any = None) -> dict[str, Any]:
    """The form(s) of the element `el` names; after a failed POST (`data`), the one it came from
    bound to what was typed, the others as the draft has them."""

    def sent(*ops_: str) -> Any:
        # Only the form whose edit failed: bound to another form's fields, the element's own
        # form said "This field is required." and showed empty, and what was typed was lost.
        return data if data is not None and data.get("op") in ops_ else None

    o = docs.get("orchestration") or {}
    stage_keys = [str(s.get("key")) for s in o.get("stages") or [] if isinstance(s, dict)]
    kind, _, rest = el.partition(":")
    ctx: dict[str, Any] = {"el_kind": kind or "settings"}
    try:
        if kind in ("", "settings"):
            ctx["form"] = f.SettingsForm(sent("set_settings"), initial=f.SettingsForm.initial_of(o))
        elif kind == "start":
            ctx["form"] = f.StartForm(sent("set_start"), initial=f.StartForm.initial_of(o))
            ctx["form"].fields["record_type"].widget.attrs["list"] = "record-types"
            ctx["record_types"] = _record_types()
            ctx["kinds_of"] = {name: " ".join(types) for name, types in f.START_TYPE_FIELDS.items()}
            start = sub(o, "start")
            ctx["inputs"] = start.get("inputs") or []
            ctx["new_input"] = f.VariableForm(
                sent("variable_save"), initial={"where": "inputs"}, prefix="input"
            )
        elif kind == "variables":
            ctx["variables"] = o.get("variables") or []
            ctx["new_variable"] = f.VariableForm(sent("variable_save"), initial={"where": "variables"})
        elif kind == "stage":
            st = ops.stage(docs, rest)
            step_keys = [str(s.get("key")) for s in ops.steps(st)]
            others = [str(k) for k in stage_keys if k != rest]
            ctx.update(
                stage=st,
                form=f.StageForm(
                    sent("stage_save"), initial=f.StageForm.initial_of(st), steps=step_keys, stages=others
                ),
                route=f.RouteForm(sent("stage_route"), initial=f.RouteForm.initial_of(st), stages=others),
                new_step=f.NewStepForm(sent("step_add")),
            )
        elif kind == "step":
            stage_key, _, key = rest.partition("/")
            st = ops.stage(docs, stage_key)
            sp = ops.step(docs, stage_key, key)
            siblings = [str(s.get("key")) for s in ops.steps(st) if s.get("key") != key]
            step_form = f.StepForm(sent("step_save"), initial=f.StepForm.initial_of(sp), siblings=siblings)
            step_form.fields["flow"].widget.attrs["list"] = "flow-names"
            ctx.update(
                stage=st,
                step=sp,
                form=step_form,
                flow_choices=_flow_choices(docs),
                kinds_of={name: " ".join(kinds) for name, kinds in f.STEP_KIND_FIELDS.items()},
                other_stages=[str(k) for k in stage_keys if k != stage_key],
            )
        elif kind == "flow":
            fl = ops.flow(docs, rest)
            ctx.update(
                flow=fl,
                form=f.FlowForm(
                    sent("flow_save"),
                    initial={"label": fl.get("label", ""), "description": fl.get("description", "")},
                ),
                outputs=f.OutputsForm(
                    sent("flow_outputs"),
                    initial={
                        "outputs": "\n".join(
                            f"{x.get('name')}: {x.get('type', 'text')}" for x in fl.get("outputs") or []
                        )
                    },
                ),
                action_types=ops.ACTION_TYPES,
            )
        elif kind == "screen":
            flow_name, _, key = rest.partition("/")
            sc = ops.screen(docs, flow_name, key)
            ctx.update(
                flow_name=flow_name,
                screen=sc,
                form=f.ScreenForm(
                    sent("screen_save"),
                    initial={
                        "new_key": sc.get("key"),
                        "label": sc.get("label", ""),
                        "help": sc.get("help", ""),
                    },
                ),
                # Its own ids: the screen's form above has a label and a help too.
                new_field=f.FieldForm(sent("field_save"), auto_id="new-field-%s"),
            )
        elif kind == "field":
            flow_name, screen_key, name = [*rest.split("/"), "", ""][:3]
            sc = ops.screen(docs, flow_name, screen_key)
            fd = next((x for x in sc.get("fields") or [] if x.get("name") == name), None)
            if fd is None:
                raise BuilderError(f"screen '{screen_key}' has no field '{name}'")
            ctx.update(
                flow_name=flow_name,
                screen=sc,
                field=fd,
                form=f.FieldForm(sent("field_save"), initial=f.FieldForm.initial_of(fd)),
            )
        elif kind == "action":
            flow_name, _, index = rest.partition("/")
            fl = ops.flow(docs, flow_name)
            actions = fl.get("actions") or []
            i = int(index) if index.isdigit() else -1
            if not 0 <= i < len(actions):
                raise BuilderError(f"flow '{flow_name}' has no action {i + 1}")
            action = actions[i]
            ctx.update(
                flow_name=flow_name,
                index=i,
                action=action,
                form=f.ActionForm(sent("action_save"), initial=f.ActionForm.initial_of(action)),
                shown=f.ACTION_FIELDS.get(str(action.get("type")), ()),
            )
        elif kind == "yaml":
            ctx["yaml"] = draft_yaml(docs)
        else:
            raise BuilderError(f"there is no element '{el}'")
    except BuilderError as exc:
        ctx = {"el_kind": "missing", "missing": str(exc)}
    return ctx


# A problem's path inside its element -> the form field it is shown on (else on the element).
FIELD_OF = {
    "key": "new_key",
    "start.after": "after",
    "start.condition": "start_condition",
    "completion.condition": "completion_condition",
    "completion.evaluation_flow": "completion_evaluation_flow",
    "sla.due": "due",
    "sla.priority": "priority",
    "email.subject": "email_subject",
    "email.body": "email_body",
    "exit.after": "exit_after",
    "exit.condition": "exit_condition",
    "exit.evaluation_flow": "exit_evaluation_flow",
    "wait": "wait_for",
    "wait.for": "wait_for",
    "wait.until": "wait_until",
    "wait.condition": "wait_condition",
    "wait.timeout": "wait_timeout",
}


def _form_field(form: Any, path: str) -> str | None:
    """The field of `form` a problem at `path` (inside its element) belongs to."""
    import re as _re

    bare = _re.sub(r"\[\d+\]", "", path)
    parts = bare.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        name = FIELD_OF.get(name, name)
        if form is not None and name in form.fields:
            return name
    return None


# The model's errors on a whole step say which field is missing only in their words: shown on it.
MISSING = {"needs a flow": "flow", "needs an assignee": "assignee_kind"}


def _fields(form: Any, problems: list[Problem]) -> tuple[list[tuple[Any, list[str]]], list[Problem]]:
    """The form's fields each with the problems on it, and the problems on no field."""
    on: dict[str, list[str]] = {}
    rest = []
    for p in problems:
        name = _form_field(form, p.field)
        if not p.field and form is not None:
            name = next(
                (f for end, f in MISSING.items() if p.message.endswith(end) and f in form.fields), name
            )
        if name:
            on.setdefault(name, []).append(p.message)
        else:
            rest.append(p)
    return [(bf, on.get(bf.name, [])) for bf in form] if form is not None else [], rest


def _flow_choices(docs: dict[str, Any]) -> list[tuple[str, str]]:
    """The flows a step may run: the draft's own, then the active ones (by kind)."""
    from ..models import FlowVersion

    own = [
        (name, str(fl.get("kind"))) for name, fl in (docs.get("flows") or {}).items() if isinstance(fl, dict)
    ]
    active = FlowVersion.objects.filter(is_active=True).exclude(flow__api_name__in=[n for n, _ in own])
    return own + [
        (v.flow.api_name, v.flow.kind) for v in active.select_related("flow").order_by("flow__api_name")
    ]


def _context(
    request: HttpRequest, draft: Draft, el: str, *, data: Any = None, error: str = ""
) -> dict[str, Any]:
    docs = draft.documents
    problems = draft_problems(docs)
    parsed = _parsed(docs)
    base = reverse("builder:draft", args=[draft.pk])

    def link(kind: str, stage_key: str, step_key: str | None) -> str:
        target = f"stage:{stage_key}" if kind == "stage" else f"step:{stage_key}/{step_key}"
        return f"{base}?{urlencode({'el': target})}"

    o = docs.get("orchestration") or {}
    element = _element_context(docs, el, data)
    here = [p for p in problems if p.element == (el or "settings")]
    fields, loose = _fields(element.get("form"), here)
    return {
        "draft": draft,
        "docs": docs,
        "o": o,
        "stages": [s for s in o.get("stages") or [] if isinstance(s, dict)],
        "flows": docs.get("flows") or {},
        "el": el or "settings",
        "problems": problems,
        "by_element": _by_element(problems),
        "here": here,
        "fields": fields,
        "loose": loose,
        "graph": definition_graph(parsed, link=link) if parsed is not None else None,
        "can_undo": draft.revision > 1,
        "can_redo": can_redo(draft),
        "revisions": list(draft.revisions.order_by("-number").values("number", "summary", "created_at")[:12]),
        "names": _names(docs),
        "error": error,
        "read_only": draft.activated_version_id is not None,
        **element,
    }


def _render(request: HttpRequest, draft: Draft, el: str, **kw: Any) -> HttpResponse:
    ctx = _context(request, draft, el, **kw)
    if request.headers.get("HX-Request"):
        response = render(request, f"{TEMPLATE}#builder", ctx)
        response["HX-Push-Url"] = (
            f"{reverse('builder:draft', args=[draft.pk])}?{urlencode({'el': ctx['el']})}"
        )
        return response
    return render(request, TEMPLATE, ctx)


@login_required
@require_http_methods(["GET", "HEAD"])
def draft_page(request: HttpRequest, pk: int) -> HttpResponse:
    _require(request)
    return _render(request, _draft(pk), request.GET.get("el", ""))


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _position(items: list[Any], key: str, field: str, p: Any) -> int:
    """The index a move goes to: `to` (1-based, as people count), or one up or down (`dir`)."""
    if p.get("to"):
        return _int(p["to"], 1) - 1
    at = next((i for i, x in enumerate(items) if isinstance(x, dict) and x.get(field) == key), 0)
    return at - 1 if p.get("dir") == "up" else at + 1


def _params(docs: dict[str, Any], op: str, p: Any) -> tuple[dict[str, Any], str, Any]:
    """(the edit's parameters, the element to show after it, a bound form whose errors stop it)."""
    form: Any = None

    def valid(form_: Any) -> Any:
        nonlocal form
        form = form_
        return form_.cleaned_data if form_.is_valid() else None

    key, stage_key, flow_name = p.get("key", ""), p.get("stage_key", ""), p.get("flow_name", "")
    form_: Any
    if op == "set_settings":
        d = valid(f.SettingsForm(p))
        return (d or {}), "settings", form
    if op == "set_start":
        d = valid(f.StartForm(p))
        return (d or {}), "start", form
    if op == "variable_save":
        prefix = "input" if p.get("input-where") else None
        d = valid(f.VariableForm(p, prefix=prefix))
        where = (d or {}).get("where", "variables")
        return (d or {}), "start" if where == "inputs" else "variables", form
    if op == "variable_remove":
        where = p.get("where", "variables")
        return (
            {"where": where, "name": p.get("name", "")},
            "start" if where == "inputs" else "variables",
            None,
        )
    if op == "stage_add":
        new = p.get("new_key", "").strip()
        return {"key": new, "after": p.get("after", "")}, f"stage:{new}" if new else "settings", None
    if op == "stage_save":
        others = [str(s.get("key")) for s in ops.stages(docs) if s.get("key") != key]
        steps = [str(s.get("key")) for s in ops.steps(ops.stage(docs, key))]
        form_ = f.StageForm(p, steps=steps, stages=others)
        d = valid(form_)
        return (form_.params(key) if d else {}), f"stage:{p.get('new_key', key)}", form
    if op == "stage_route":
        others = [str(s.get("key")) for s in ops.stages(docs) if s.get("key") != key]
        form_ = f.RouteForm(p, stages=others)
        d = valid(form_)
        return (form_.params(key) if d else {}), f"stage:{key}", form
    if op == "stage_remove":
        return {"key": key}, "settings", None
    if op == "stage_move":
        return (
            {"key": key, "to": _position(ops.stages(docs), key, "key", p)},
            p.get("el") or f"stage:{key}",
            None,
        )
    if op == "step_add":
        d = valid(f.NewStepForm(p))
        new = (d or {}).get("key", "").strip()
        if d and not new:
            new = ops._unique("step", ops.all_step_keys(docs))
        return (
            {"stage_key": stage_key, "key": new, "kind": (d or {}).get("kind", "")},
            f"step:{stage_key}/{new}",
            form,
        )
    if op == "step_save":
        st = ops.stage(docs, stage_key)
        old = ops.step(docs, stage_key, key)
        siblings = [str(s.get("key")) for s in ops.steps(st) if s.get("key") != key]
        form_ = f.StepForm(p, siblings=siblings)
        d = valid(form_)
        params = (
            {"stage_key": stage_key, "key": key, "new_key": d["new_key"], "fields": form_.fields_of(old)}
            if d
            else {}
        )
        return params, f"step:{stage_key}/{p.get('new_key', key)}", form
    if op == "step_remove":
        return {"stage_key": stage_key, "key": key}, f"stage:{stage_key}", None
    if op == "step_move":
        to_stage = p.get("to_stage", "")
        items = ops.steps(ops.stage(docs, stage_key))
        to = len(ops.steps(ops.stage(docs, to_stage))) if to_stage else _position(items, key, "key", p)
        return (
            {"stage_key": stage_key, "key": key, "to": to, "to_stage": to_stage},
            p.get("el") or f"step:{to_stage or stage_key}/{key}",
            None,
        )
    if op == "flow_add":
        d = valid(f.NewFlowForm(p))
        return (d or {}), f"flow:{(d or {}).get('api_name', '')}", form
    if op == "flow_save":
        d = valid(f.FlowForm(p))
        return ({"name": flow_name, **d} if d else {}), f"flow:{flow_name}", form
    if op == "flow_remove":
        return {"name": flow_name}, "settings", None
    if op == "flow_outputs":
        d = valid(f.OutputsForm(p))
        outputs = [{"name": n, "type": t or "text"} for n, t in (d or {}).get("outputs", {}).items()]
        return ({"name": flow_name, "outputs": outputs} if d else {}), f"flow:{flow_name}", form
    if op == "screen_add":
        new = p.get("new_key", "").strip()
        return {"flow_name": flow_name, "key": new}, f"flow:{flow_name}", None
    if op == "screen_save":
        d = valid(f.ScreenForm(p))
        return (
            ({"flow_name": flow_name, "key": key, **d} if d else {}),
            f"screen:{flow_name}/{p.get('new_key', key)}",
            form,
        )
    if op == "screen_remove":
        return {"flow_name": flow_name, "key": key}, f"flow:{flow_name}", None
    if op == "screen_move":
        items = ops.flow(docs, flow_name).get("screens") or []
        return (
            {"flow_name": flow_name, "key": key, "to": _position(items, key, "key", p)},
            f"flow:{flow_name}",
            None,
        )
    screen_key = p.get("screen_key", "")
    if op == "field_save":
        form_ = f.FieldForm(p)
        d = valid(form_)
        params = (
            {
                "flow_name": flow_name,
                "screen_key": screen_key,
                "old_name": d["old_name"],
                "values": form_.values(),
            }
            if d
            else {}
        )
        return params, f"field:{flow_name}/{screen_key}/{p.get('name', '')}", form
    if op == "field_remove":
        return (
            {"flow_name": flow_name, "screen_key": screen_key, "name": p.get("name", "")},
            f"screen:{flow_name}/{screen_key}",
            None,
        )
    if op == "field_move":
        items = ops.screen(docs, flow_name, screen_key).get("fields") or []
        name = p.get("name", "")
        return (
            {
                "flow_name": flow_name,
                "screen_key": screen_key,
                "name": name,
                "to": _position(items, name, "name", p),
            },
            f"screen:{flow_name}/{screen_key}",
            None,
        )
    index = _int(p.get("index"), -1)
    if op == "action_add":
        kind = p.get("type", "")
        starter: dict[str, dict[str, Any]] = {
            "set_outputs": {"values": {"name": "value"}},
            "update_record": {"values": {"field": "value"}},
            "send_email": {"to": "record.owner_email", "subject": "Subject", "body": "Body"},
            "http": {"method": "POST", "url": "'https://example.invalid/'"},
            "create_record": {"record_type": "case", "name": "'New record'"},
            "call": {"name": "flow_name"},
        }
        count = len(ops.flow(docs, flow_name).get("actions") or [])
        return (
            {"flow_name": flow_name, "index": None, "action": {"type": kind, **starter.get(kind, {})}},
            f"action:{flow_name}/{count}",
            None,
        )
    if op == "action_save":
        form_ = f.ActionForm(p)
        d = valid(form_)
        return (
            ({"flow_name": flow_name, "index": index, "action": form_.action()} if d else {}),
            f"action:{flow_name}/{index}",
            form,
        )
    if op == "action_remove":
        return {"flow_name": flow_name, "index": index}, f"flow:{flow_name}", None
    if op == "action_move":
        to = _int(p.get("to"), 0) - 1 if p.get("to") else index + (-1 if p.get("dir") == "up" else 1)
        return {"flow_name": flow_name, "index": index, "to": to}, f"flow:{flow_name}", None
    raise BuilderError(f"unknown edit '{op}'")


OP_NAMES = {"action_add": "action_save"}


@login_required
@require_POST
def draft_edit_view(request: HttpRequest, pk: int) -> HttpResponse:
    """One edit. A form with errors, or an edit the draft refuses, shows the element again with
    what was typed and the message; nothing is saved."""
    _require(request)
    draft = _draft(pk)
    p = request.POST
    op = p.get("op", "")
    revision = _int(p.get("revision"), -1)
    try:
        params, after, form = _params(draft.documents, op, p)
        if form is not None and not form.is_valid():
            return _render(
                request, draft, p.get("el") or after, data=p, error="Check the fields marked below."
            )
        draft, summary = draft_edit(
            draft=draft, op=OP_NAMES.get(op, op), params=params, actor=request.user, revision=revision
        )
    except BuilderError as exc:
        draft.refresh_from_db()
        return _render(request, draft, p.get("el") or "", data=p if p.get("el") else None, error=str(exc))
    if not request.headers.get("HX-Request"):
        messages.success(request, summary)
        return _open(draft, after)
    return _render(request, draft, after)


@login_required
@require_POST
def draft_history(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Undo or redo."""
    _require(request)
    draft = _draft(pk)
    el = request.POST.get("el", "")
    try:
        fn = {"undo": draft_undo, "redo": draft_redo}[action]
    except KeyError as exc:
        raise PermissionDenied("unknown action") from exc
    try:
        draft = fn(draft=draft, actor=request.user, revision=_int(request.POST.get("revision"), -1))
    except BuilderError as exc:
        draft.refresh_from_db()
        return _render(request, draft, el, error=str(exc))
    if not request.headers.get("HX-Request"):
        return _open(draft, el)
    return _render(request, draft, el)


@login_required
@require_POST
def draft_yaml_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Replace the draft by the YAML typed; a YAML that does not parse is shown again with the
    parser's message, nothing lost."""
    _require(request)
    draft = _draft(pk)
    text = request.POST.get("yaml", "")
    try:
        draft = draft_set_yaml(
            draft=draft, text=text, actor=request.user, revision=_int(request.POST.get("revision"), -1)
        )
    except BuilderError as exc:
        draft.refresh_from_db()
        return _with_text(request, draft, text, str(exc))
    if not request.headers.get("HX-Request"):
        messages.success(request, "Saved the YAML.")
        return _open(draft, "yaml")
    return _render(request, draft, "yaml")


def _with_text(request: HttpRequest, draft: Draft, text: str, error: str) -> HttpResponse:
    """The YAML page again with the text as typed (not the draft's), so nothing typed is lost."""
    ctx = _context(request, draft, "yaml", error=error)
    ctx["yaml"] = text
    template = f"{TEMPLATE}#builder" if request.headers.get("HX-Request") else TEMPLATE
    return render(request, template, ctx)


@login_required
@require_http_methods(["GET", "HEAD"])
def draft_download(request: HttpRequest, pk: int) -> HttpResponse:
    _require(request)
    draft = _draft(pk)
    response = HttpResponse(draft_yaml(draft.documents), content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{draft.api_name or "draft"}-draft-{draft.pk}.yaml"'
    )
    return response


@login_required
@require_POST
def draft_activate_view(request: HttpRequest, pk: int) -> HttpResponse:
    _require(request)
    draft = _draft(pk)
    try:
        report = draft_activate(
            draft=draft, actor=request.user, revision=_int(request.POST.get("revision"), -1)
        )
    except BuilderError as exc:
        draft.refresh_from_db()
        return _render(request, draft, request.POST.get("el", ""), error=str(exc))
    draft.refresh_from_db()
    created = ", ".join(report.created) or "nothing new (every document was unchanged)"
    messages.success(request, f"Activated: {created}.")
    version = draft.activated_version
    assert version is not None
    target = reverse("monitor:version", args=[version.orchestration.api_name, version.number])
    if not any(request.user.has_perm(p) for p in VIEW_PERMS):
        # Someone who may build but not see the monitoring pages would land on a 403 there: the
        # draft's page says what was activated.
        target = reverse("builder:draft", args=[draft.pk])
    if request.headers.get("HX-Request"):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return redirect(target)
