"""Admin building blocks: read-only pages and write-only secrets.

What an operator may change by hand in the admin is settings. Records of what happened (the
audit log, counters) and states with rules around them move only through the audited actions,
and a stored secret is never shown back, not even as the reference it is.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from outreach.lib import secrets


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    """Listed and viewed, never added, changed or deleted from the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SecretsForm(forms.ModelForm[Any]):
    """A model form whose ``secrets`` (name → reference) is write-only.

    ``new_secrets`` takes a JSON object of ``name: value``: a value ``env:NAME`` is kept as that
    reference (checked like a pool file's), any other string is encrypted, and ``null`` removes
    the secret. Names not given keep their stored reference. Nothing stored is ever rendered.
    """

    new_secrets = forms.CharField(
        required=False,
        label="Set secrets",
        widget=forms.PasswordInput(render_value=False),
        help_text='Write-only. JSON: {"password": "the value", "api_key": "env:OUTREACH_SECRET_X",'
        ' "old": null}. Stored secrets are never shown; names not given are kept.',
    )

    def clean_new_secrets(self) -> dict[str, str | None]:
        raw = self.cleaned_data.get("new_secrets") or ""
        if not raw.strip():
            return {}
        try:
            given = json.loads(raw)
        except ValueError:
            raise forms.ValidationError("not a JSON object") from None
        if not isinstance(given, dict):
            raise forms.ValidationError("not a JSON object")
        refs: dict[str, str | None] = {}
        for name, value in given.items():
            if value is None:
                refs[name] = None
            elif not isinstance(value, str) or not value:
                raise forms.ValidationError(f"{name}: a secret is a non-empty string or null")
            else:
                try:
                    refs[name] = _reference(value)
                except secrets.SecretError as exc:
                    raise forms.ValidationError(f"{name}: {exc}") from None
        return refs

    def save(self, commit: bool = True) -> Any:
        instance = super().save(commit=False)
        stored = dict(instance.secrets or {})
        for name, ref in self.cleaned_data.get("new_secrets", {}).items():
            if ref is None:
                stored.pop(name, None)
            else:
                stored[name] = ref
        instance.secrets = stored
        if commit:
            instance.save()
            self.save_m2m()
        return instance


def _reference(value: str) -> str:
    if value.startswith("env:"):
        return secrets.env_ref(value.removeprefix("env:"))
    return secrets.encrypt(value)


class WriteOnlySecretsAdmin(admin.ModelAdmin[Any]):
    """For a model with a ``secrets`` JSON field: shown as names only, set through the form."""

    form = SecretsForm

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [*(super().get_exclude(request, obj) or []), "secrets"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), "secret_names"]

    @admin.display(description="Stored secrets")
    def secret_names(self, obj: models.Model) -> str:
        names = sorted(getattr(obj, "secrets", None) or {})
        return ", ".join(names) or "none"
