// The builder's page: drag and drop to reorder stages and steps (the ↑ ↓ buttons do the same
// from the keyboard), and focus kept on the control that made a change after htmx swaps the
// builder region in (a keyboard user goes on where they were).
(function () {
  "use strict";
  let lastId = null;
  let fromBuilder = false;

  document.addEventListener("htmx:beforeRequest", function (event) {
    const active = document.activeElement;
    const builder = document.getElementById("builder");
    lastId = active && active.id ? active.id : null;
    fromBuilder = Boolean(builder && active && builder.contains(active));
  });

  document.addEventListener("htmx:afterSwap", function () {
    let target = lastId ? document.getElementById(lastId) : null;
    if (target && target.disabled) {
      // A stage moved to the top loses its "up" button: its "down" one is next to it (and Redo
      // is next to an Undo with nothing left to undo).
      const other = { undo: "redo", redo: "undo" }[lastId] ||
        lastId.replace(/-(up|down)-/, function (_, dir) { return dir === "up" ? "-down-" : "-up-"; });
      const twin = document.getElementById(other);
      target = twin && !twin.disabled ? twin : null;
    }
    if (!target && fromBuilder) {
      // The control is gone (an outline link, "Add step" opening the new step, "Remove"): the
      // element now shown is where to go on, not the top of the page.
      target = document.getElementById("h-element");
      if (target) target.setAttribute("tabindex", "-1");
    }
    if (target) target.focus();
  });

  // A step's form shows the fields of the kind chosen (data-kinds), the start's those of its
  // type, and any field with a problem on it; without JavaScript, all of them.
  const KIND = "#element-form select[name=kind], #element-form select[name=type]";
  function showKind() {
    const kind = document.querySelector(KIND);
    if (!kind) return;
    document.querySelectorAll("#element-form [data-kinds]").forEach(function (el) {
      const flagged = el.querySelector(".builder-problem, [role=alert]");
      el.hidden = !flagged && !el.dataset.kinds.split(" ").includes(kind.value);
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", showKind);
  else showKind();
  document.addEventListener("htmx:afterSwap", showKind);
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches(KIND)) showKind();
  });

  function submitMove(list, key, to) {
    const form = document.createElement("form");
    form.method = "post";
    form.action = list.closest("#builder").querySelector("#add-stage, #element-form, form[action$='/edit/']").getAttribute("action");
    const fields = { op: list.dataset.draggable, key: key, to: String(to + 1), revision: list.closest("#builder").dataset.revision };
    if (list.dataset.stage) fields.stage_key = list.dataset.stage;
    const el = new URLSearchParams(window.location.search).get("el");
    if (el) fields.el = el;
    const csrf = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (csrf) fields.csrfmiddlewaretoken = csrf.value;
    for (const [name, value] of Object.entries(fields)) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.appendChild(input);
    }
    list.closest("#builder").appendChild(form);
    if (window.htmx) window.htmx.process(form);
    form.requestSubmit();
  }

  let dragged = null;
  document.addEventListener("dragstart", function (event) {
    const item = event.target.closest && event.target.closest("[data-draggable] > [draggable=true]");
    if (!item) return;
    dragged = item;
    item.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", item.dataset.key);
  });
  document.addEventListener("dragend", function () {
    if (dragged) dragged.classList.remove("dragging");
    document.querySelectorAll(".drop-target").forEach(function (el) { el.classList.remove("drop-target"); });
    dragged = null;
  });
  document.addEventListener("dragover", function (event) {
    if (!dragged) return;
    const over = event.target.closest && event.target.closest("[data-draggable] > [draggable=true]");
    if (!over || over.parentElement !== dragged.parentElement) return;
    event.preventDefault();
    document.querySelectorAll(".drop-target").forEach(function (el) { el.classList.remove("drop-target"); });
    over.classList.add("drop-target");
  });
  document.addEventListener("drop", function (event) {
    if (!dragged) return;
    const over = event.target.closest && event.target.closest("[data-draggable] > [draggable=true]");
    if (!over || over.parentElement !== dragged.parentElement || over === dragged) return;
    event.preventDefault();
    const list = over.parentElement;
    const to = Array.prototype.indexOf.call(list.children, over);
    submitMove(list, dragged.dataset.key, to);
  });

  // Expression fields complete the name being typed wherever it is in the expression, not only
  // at its start: the names' datalist is rewritten, as the person types, into whole values (what
  // is before the name, the name completed, what is after), which is what a datalist offers.
  const NAME_AT_END = /[A-Za-z_][A-Za-z0-9_.]*$/;
  function namesOf(list) {
    if (!list.dataset.names) {
      list.dataset.names = JSON.stringify(Array.from(list.options).map(function (o) { return o.value; }));
    }
    return JSON.parse(list.dataset.names);
  }
  document.addEventListener("input", function (event) {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || input.getAttribute("list") !== "expr-names") return;
    const list = document.getElementById("expr-names");
    if (!list) return;
    const names = namesOf(list);
    const caret = input.selectionStart === null ? input.value.length : input.selectionStart;
    const before = input.value.slice(0, caret);
    const after = input.value.slice(caret);
    const match = before.match(NAME_AT_END);
    const typed = match ? match[0] : "";
    const head = before.slice(0, before.length - typed.length);
    const offered = typed ? names.filter(function (n) { return n.startsWith(typed) && n !== typed; }) : [];
    list.replaceChildren.apply(list, (offered.length ? offered : names).slice(0, 50).map(function (n) {
      const option = document.createElement("option");
      option.value = offered.length ? head + n + after : n;
      return option;
    }));
  });
})();
