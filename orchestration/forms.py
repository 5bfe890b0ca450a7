"""Forms of the orchestration pages."""

from __future__ import annotations

from pathlib import PurePath

from django import forms

MAX_UPLOAD_BYTES = 1024 * 1024
UPLOAD_SUFFIXES = (".yaml", ".yml", ".json")


class DefinitionsUploadForm(forms.Form):
    """A definitions file (YAML or JSON, one or more documents). `clean_file` turns the upload
    into (file name, text) so the view never sees bytes it cannot decode."""

    file = forms.FileField(
        label="Definitions file",
        help_text="YAML (.yaml, .yml) or JSON (.json), up to 1 MB; may hold several documents.",
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(UPLOAD_SUFFIXES)}),
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
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError("The file is larger than 1 MB.")
        raw = upload.read(MAX_UPLOAD_BYTES + 1)
        if len(raw) > MAX_UPLOAD_BYTES:
            raise forms.ValidationError("The file is larger than 1 MB.")
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
