// The people picker (workitems/templates/workitems/_picker.html): an ARIA 1.2 combobox. htmx
// fetches the matches into the listbox as one types; this script opens it, moves through it with
// the arrow keys, picks with Enter or a click, and closes it with Escape or on leaving.
// A pick fills the hidden input(s); typing again clears them, so the form never sends a stale pick.
"use strict";

(() => {
  const pickerOf = (el) => (el && el.closest ? el.closest("[data-picker]") : null);
  const parts = (picker) => {
    const input = picker.querySelector("input[role=combobox]");
    return {
      input,
      list: picker.querySelector("[role=listbox]"),
      status: picker.querySelector("[data-picker-status]"),
    };
  };
  const options = (list) => Array.from(list.querySelectorAll("[role=option]:not([aria-disabled=true])"));

  function open(picker) {
    const { input, list, status } = parts(picker);
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    const n = options(list).length;
    if (status) status.textContent = n === 0 ? "No matches" : `${n} match${n === 1 ? "" : "es"}`;
  }

  function close(picker) {
    const { input, list } = parts(picker);
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    options(list).forEach((o) => o.setAttribute("aria-selected", "false"));
  }

  function activate(picker, index) {
    const { input, list } = parts(picker);
    const all = options(list);
    if (all.length === 0) return;
    const i = (index + all.length) % all.length;
    all.forEach((o, j) => {
      o.setAttribute("aria-selected", j === i ? "true" : "false");
      o.classList.toggle("active", j === i);
    });
    input.setAttribute("aria-activedescendant", all[i].id);
    all[i].scrollIntoView({ block: "nearest" });
  }

  function activeIndex(picker) {
    const { list } = parts(picker);
    return options(list).findIndex((o) => o.getAttribute("aria-selected") === "true");
  }

  function clearPick(picker) {
    picker.querySelectorAll("[data-picker-token], [data-picker-field]").forEach((h) => {
      h.value = "";
    });
  }

  function choose(picker, option) {
    const { input, status } = parts(picker);
    input.value = option.dataset.label;
    clearPick(picker);
    const token = picker.querySelector("[data-picker-token]");
    if (token) token.value = option.dataset.token;
    const field = picker.querySelector(`[data-picker-field="${option.dataset.kind}"]`);
    if (field) field.value = option.dataset.value;
    picker.dataset.picked = option.dataset.label;
    close(picker);
    if (status) status.textContent = `${option.dataset.label} picked`;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  document.addEventListener("htmx:afterSwap", (event) => {
    const picker = pickerOf(event.detail && event.detail.target);
    if (!picker) return;
    const { input } = parts(picker);
    if (document.activeElement === input) open(picker);
  });

  document.addEventListener("input", (event) => {
    const picker = pickerOf(event.target);
    if (!picker || event.target.getAttribute("role") !== "combobox") return;
    // Typed text is not a pick until one is chosen again.
    if (event.target.value !== picker.dataset.picked) {
      clearPick(picker);
      delete picker.dataset.picked;
    }
  });

  document.addEventListener("keydown", (event) => {
    const picker = pickerOf(event.target);
    if (!picker || event.target.getAttribute("role") !== "combobox") return;
    const { list } = parts(picker);
    const shown = !list.hidden;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (!shown) open(picker);
      const i = activeIndex(picker);
      activate(picker, event.key === "ArrowDown" ? i + 1 : i < 0 ? -1 : i - 1);
    } else if (event.key === "Enter" && shown) {
      const i = activeIndex(picker);
      const all = options(list);
      const pick = i >= 0 ? all[i] : all.length === 1 ? all[0] : null;
      if (pick) {
        event.preventDefault(); // a pick, not a submit
        choose(picker, pick);
      }
    } else if (event.key === "Escape" && shown) {
      event.preventDefault();
      event.stopPropagation(); // close the list, not the dialog around it
      close(picker);
    } else if (event.key === "Tab" && shown) {
      close(picker);
    }
  });

  // mousedown, not click: it comes before the input's blur.
  document.addEventListener("mousedown", (event) => {
    const option = event.target.closest && event.target.closest("[data-picker] [role=option]");
    if (option && option.getAttribute("aria-disabled") !== "true") {
      event.preventDefault();
      choose(pickerOf(option), option);
    }
  });

  document.addEventListener("focusout", (event) => {
    const picker = pickerOf(event.target);
    if (picker && !picker.contains(event.relatedTarget)) close(picker);
  });
})();

// A row's dialog that came back with a message (bad input) opens again where it was.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[popover][data-open-on-load]").forEach((el) => {
    if (typeof el.showPopover === "function") el.showPopover();
  });
});
