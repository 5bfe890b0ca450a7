"""Forms of the orchestration pages."""

from __future__ import annotations

from pathlib import PurePath

from django import forms
from django.conf import settings

from .loading import DEFAULT_MAX_BYTES, max_document_bytes, size_label

MAX_UPLOAD_BYTES = DEFAULT_MAX_BYTES  # the default of ORCHESTRATION_DEFINITION_MAX_BYTES
UPLOAD_SUFFIXES = (".yaml", ".yml", ".json")


class DefinitionsUploadForm(forms.Form):
    """A definitions file (YAML or JSON, one or more documents). `clean_file` turns the upload
    into (file name, text) so the view never sees bytes it cannot decode."""

    file = forms.FileField(
        label="Definitions file",
        help_text="YAML (.yaml, .yml) or JSON (.json); may hold several documents.",
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(UPLOAD_SUFFIXES)}),
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["file"].help_text = (
            f"YAML (.yaml, .yml) or JSON (.json), up to {size_label(max_document_bytes())}; "
            "may hold several documents."
        )

    activate = forms.BooleanField(
        label="Activate after import",
        required=False,
        help_text="New versions become the active ones; runs already started keep their version.",
    )

    def clean_file(self) -> tuple[str, str]:
        upload = self.cleaned_data["file"]
        # Only the base name: it is shown in errors and stored as the version's source.
        name = PurePath(upload.name or "").name
        if not name.lower().endswith(UPLOAD_SUFFIXES):
            raise forms.ValidationError("Upload a .yaml, .yml or .json file.")
        limit = max_document_bytes()
        if upload.size > limit:
            raise forms.ValidationError(f"The file is larger than {size_label(limit)}.")
        raw = upload.read(limit + 1)
        if len(raw) > limit:
            raise forms.ValidationError(f"The file is larger than {size_label(limit)}.")
        if not raw.strip():
            raise forms.ValidationError("The file is empty.")
        if b"\x00" in raw:
            raise forms.ValidationError("This is a binary file, not YAML or JSON text.")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise forms.ValidationError(
                f"The file is not UTF-8 text (byte {exc.start + 1} cannot be read)."
            ) from exc
        # load_text picks JSON by the suffix; normalise the case so FILE.JSON parses as JSON.
        stem, _, suffix = name.rpartition(".")
        return f"{stem}.{suffix.lower()}", text


class ApiTokenCreateForm(forms.Form):
    """A new API token of one's own: a name and a lifetime (the default is API_TOKEN_DAYS)."""

    name = forms.CharField(
        label="Name", max_length=100, help_text="What the token is for, e.g. “nightly import”."
    )
    lifetime = forms.ChoiceField(label="Expires", help_text="A token that never expires works until revoked.")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        days = sorted({30, 90, 365, settings.API_TOKEN_DAYS})
        choices = [(str(d), f"in {d} days") for d in days] + [("never", "never")]
        field = self.fields["lifetime"]
        field.choices = choices  # type: ignore[attr-defined]
        field.initial = str(settings.API_TOKEN_DAYS)

    def lifetime_days(self) -> int | None:
        """The days chosen, or None for a token that never expires."""
        value = self.cleaned_data["lifetime"]
        return None if value == "never" else int(value)
