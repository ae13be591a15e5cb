"""The overview's "needs attention" actions: pause or resume a selection of mailboxes at once.

Each mailbox goes through :func:`outreach.dashboard.actions.act_on_mailbox` (and so through
the pool's state transitions and the audit log) with the one reason given; one mailbox that
cannot move does not stop the others, and each outcome is reported.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from outreach.dashboard import actions, forms
from outreach.dashboard.views import _actor, _form_errors, staff_required
from outreach.scheduler.capacity import domain_holds


@require_POST
@staff_required
def mailbox_bulk(request: HttpRequest) -> HttpResponse:
    form = forms.BulkMailboxForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect(reverse("dashboard:overview") + "#attention")
    action = form.cleaned_data["action"]
    reason = form.cleaned_data["reason"]
    held = domain_holds()
    done = 0
    for mailbox in form.cleaned_data["mailbox"]:
        try:
            change = actions.act_on_mailbox(mailbox, action, reason=reason, actor=_actor(request))
        except actions.ActionError as exc:
            messages.error(request, str(exc))
            continue
        done += 1
        note = f"{mailbox.address}: {change.from_state} → {change.to_state}"
        # Resumed, yet still not sending: say so, or the operator believes it is back.
        if action == "resume" and mailbox.domain_id in held:
            messages.warning(
                request, f"{note}, but it will not send yet: {held[mailbox.domain_id]}"
            )
        else:
            messages.success(request, note)
    if done > 1:
        messages.info(request, f"{action}: {done} mailboxes ({reason})")
    return redirect(reverse("dashboard:overview") + "#attention")
