"""Logins: lockout after failed attempts (django-axes) and TOTP two-factor (django-otp).

A user with a confirmed TOTP device must give a code after the password before anything but
the two-factor page opens; with ``OUTREACH_REQUIRE_2FA`` a staff user without one must set one
up first. The rule is :func:`two_factor_step`; :class:`TwoFactorMiddleware` applies it to
every page, the admin's included, whatever login form was used.
"""

from __future__ import annotations

import base64
from binascii import unhexlify
from collections.abc import Callable
from urllib.parse import quote

import django_otp
from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django_otp.plugins.otp_totp.models import TOTPDevice

VERIFY, SETUP = "verify", "setup"
# Pages an unverified session may still open: the two-factor page itself, logging out, and
# what never needs a login (static files, health, metrics, webhooks, unsubscribe links).
_OPEN_PREFIXES = ("/accounts/", "/static/", "/healthz", "/metrics", "/webhooks/", "/u/")


def two_factor_step(*, verified: bool, has_device: bool, staff: bool, required: bool) -> str:
    """What a logged-in session must do before using outreach: "" (nothing), VERIFY (give a
    code of its device) or SETUP (add a device: staff, when two-factor is compulsory)."""
    if verified:
        return ""
    if has_device:
        return VERIFY
    if staff and required:
        return SETUP
    return ""


def _step(request: HttpRequest) -> str:
    user = request.user
    if not user.is_authenticated:
        return ""
    # is_verified() is added to the user by django-otp's OTPMiddleware.
    return two_factor_step(
        verified=user.is_verified(),  # type: ignore[attr-defined]
        has_device=django_otp.user_has_device(user),
        staff=user.is_staff,
        required=settings.OUTREACH_REQUIRE_2FA,
    )


class TwoFactorMiddleware:
    """Sends a session that still owes its second factor to the two-factor page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(_OPEN_PREFIXES) and _step(request):
            return redirect(f"{reverse('two_factor')}?next={quote(request.get_full_path())}")
        return self.get_response(request)


class TokenForm(forms.Form):
    token = forms.RegexField(
        regex=r"^\d{6}$",
        label="Code from your authenticator app",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        error_messages={"invalid": "six digits"},
    )


def _next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or "/"
    safe = url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure())
    return target if safe else "/"


@never_cache
@login_required
def two_factor(request: HttpRequest) -> HttpResponse:
    """Give a code of one's device, or set one up (scan the key, confirm with a code)."""
    user = request.user
    confirmed = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if confirmed is None and not user.is_staff:
        return redirect("/")  # two-factor is offered to staff
    if confirmed is not None and user.is_verified():  # type: ignore[union-attr]
        return render(request, "registration/two_factor.html", {"done": True})
    device = confirmed or _pending_device(user)
    form = TokenForm(request.POST or None)
    if form.is_valid():
        # verify_token throttles repeated failures (django-otp's TOTP throttling).
        if device.verify_token(form.cleaned_data["token"]):
            if not device.confirmed:
                device.confirmed = True
                device.save(update_fields=["confirmed"])
            django_otp.login(request, device)
            return redirect(_next(request))
        form.add_error("token", "wrong or expired code")
    context = {"form": form, "next": _next(request), "setup": not device.confirmed}
    if not device.confirmed:
        context |= {
            "key": base64.b32encode(unhexlify(device.key)).decode(),
            "uri": device.config_url,
        }
    return render(request, "registration/two_factor.html", context)


def _pending_device(user: object) -> TOTPDevice:
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)


def client_ip(request: HttpRequest) -> str | None:
    """The address login lockouts count by. In production outreach sits behind its reverse
    proxy (docs/deploy.md), which puts the client's address last in X-Forwarded-For;
    elsewhere the peer address is the client's."""
    if settings.PRODUCTION:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR")
