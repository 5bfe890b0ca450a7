"""What the load benchmark's people read from the pages, as a browser without JavaScript does:
forms with their fields and buttons, links, My Work's rows and the messages shown. Plain
Python (no locust, no Django), so that tests/bench/test_load_pages.py can check it against the
pages the product renders today: a template change that would make the benchmark fill forms
wrongly fails there, not in the middle of a 30-minute soak."""

from __future__ import annotations

import random
import re
import time
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit


class Forms(HTMLParser):
    """Every form of a page with its fields (name, type, value, options), its submit buttons,
    every link, My Work's rows and the messages (alerts) shown."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, Any]] = []
        self.links: list[str] = []
        self.rows: list[dict[str, Any]] = []
        self.alerts: list[tuple[str, str]] = []
        self.owned: dict[str, list[dict[str, Any]]] = {}  # fields outside a form, by its id (form="…")
        self._form: dict[str, Any] | None = None
        self._select: dict[str, Any] | None = None
        self._textarea: dict[str, Any] | None = None
        self._alert: list[Any] | None = None
        self._alert_depth = 0
        self._row = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if self._alert is not None and tag == "div":
            self._alert_depth += 1
        if tag == "tr" and "data-item" in a:
            self.rows.append({"pk": int(a["data-item"]), "url": None, "claim": None, "text": ""})
            self._row = True
        elif tag == "a" and "href" in a:
            self.links.append(a["href"])
            if self.rows and self.rows[-1]["url"] is None and "?item=" in a["href"]:
                self.rows[-1]["url"] = a["href"]
        elif tag == "form":
            self._form = {
                "action": a.get("action", ""),
                "method": a.get("method", "get"),
                "fields": [],
                "buttons": [],
            }
            self.forms.append(self._form)
            if self.rows and "/claim/" in self._form["action"]:
                self.rows[-1]["claim"] = self._form
        elif tag == "div" and "alert" in a.get("class", "").split():
            level = next((c[6:] for c in a["class"].split() if c.startswith("alert-")), "")
            self._alert, self._alert_depth = [level, ""], 1
        if tag == "input" and a.get("form"):
            self.owned.setdefault(a["form"], []).append(
                {"name": a.get("name", ""), "type": a.get("type", "text"), "value": a.get("value", "")}
            )
            return
        if self._form is None:
            return
        if tag == "input":
            kind = a.get("type", "text")
            if kind == "submit":
                self._form["buttons"].append((a.get("name", ""), a.get("value", "")))
            else:
                self._form["fields"].append(
                    {
                        "name": a.get("name", ""),
                        "type": kind,
                        "value": a.get("value", ""),
                        "checked": "checked" in a,
                    }
                )
        elif tag == "button" and a.get("type", "submit") == "submit":
            self._form["buttons"].append((a.get("name", ""), a.get("value", "")))
        elif tag == "select":
            self._select = {"name": a.get("name", ""), "type": "select", "options": [], "value": ""}
            self._form["fields"].append(self._select)
        elif tag == "option" and self._select is not None:
            self._select["options"].append(a.get("value", ""))
            if "selected" in a:
                self._select["value"] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = {"name": a.get("name", ""), "type": "textarea", "value": ""}
            self._form["fields"].append(self._textarea)

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = False
        elif tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "div" and self._alert is not None:
            self._alert_depth -= 1
            if self._alert_depth == 0:
                self.alerts.append((self._alert[0], " ".join(self._alert[1].split())))
                self._alert = None

    def handle_data(self, data: str) -> None:
        if self._row:
            self.rows[-1]["text"] += data
        if self._textarea is not None:
            self._textarea["value"] += data
        if self._alert is not None:
            self._alert[1] += data


def parse(html: str) -> Forms:
    p = Forms()
    p.feed(html)
    return p


def held_by_other(row: dict[str, Any]) -> bool:
    text = " ".join(row["text"].split())
    return "held by " in text and "held by you" not in text


def form_data(form: dict[str, Any]) -> dict[str, Any]:
    """What the browser sends as the form stands (hidden inputs, current values)."""
    data: dict[str, Any] = {}
    for f in form["fields"]:
        if not f["name"] or (f["type"] == "checkbox" and not f["checked"]):
            continue
        data[f["name"]] = f["value"] if f["type"] != "checkbox" else (f["value"] or "on")
    return data


def csrf(html: str) -> str:
    m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    return m.group(1) if m else ""


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def screen_submission(form: dict[str, Any], *, username: str) -> dict[str, Any]:
    """The Work Guide form filled in as a person would, with Finish pressed: every choice
    picked, every text field typed, a checkbox sometimes ticked."""
    data = form_data(form)
    for f in form["fields"]:
        if f["type"] == "select" and not data.get(f["name"]):
            data[f["name"]] = random.choice([o for o in f["options"] if o])
        elif f["type"] in {"text", "textarea"}:
            data[f["name"]] = f"Checked by {username} at {time.strftime('%H:%M:%S')}"
        elif f["type"] == "checkbox" and random.random() < 0.3:
            data[f["name"]] = f["value"] or "on"
    name, value = next(((n, v) for n, v in form["buttons"] if v == "finish"), ("action", "finish"))
    data[name] = value
    return data


def reassign_boxes(page: Forms) -> list[str]:
    """The items Work Items offers to reassign: the row checkboxes sit in the table and join the
    reassign form by its id (form="reassign-form")."""
    return [f["value"] for f in page.owned.get("reassign-form", []) if f["name"] == "items"]


def form_posting_to(page: Forms, suffix: str) -> dict[str, Any] | None:
    return next((f for f in page.forms if f["action"].endswith(suffix)), None)
