"""Buttons on admin change pages that run a service, with a confirmation page.

An `ObjectAction` names the policy action it needs, a form for its input, a `preview`
that says what will change (computed by the services, writing nothing) and a `perform`
that calls the service. The flow is form -> confirmation page showing the money and seat
effect -> service. A rule the service refuses comes back as a form error; an action the
user's role does not allow is a 403, whether the button was shown or the POST forged.

Each app declares the buttons of its own admins. An app whose actions work on another
app's records (approvals files requests on subscriptions) adds them to that app's admin
with `add_object_actions`, so the other app need not know it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.core.validators import URLValidator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from portal import policy
from portal.errors import DomainError

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    # The mixin is only ever mixed into a ModelAdmin: type it as one.
    _AdminBase = ModelAdmin[Any]
else:
    _AdminBase = object


class _LinkOptions(TypedDict):
    assume_scheme: str
    max_length: int


# For every LinkField of an action form: a link typed without its scheme is https, and it
# fits the models' URL fields.
LINK: _LinkOptions = {"assume_scheme": "https", "max_length": 200}


class LinkField(forms.URLField):
    """An http(s) link, as the services require (`check_url`): an ftp link refused only on
    confirmation would have had a confirmation page promise what cannot happen."""

    default_validators = [URLValidator(schemes=["http", "https"])]


class NoInput(forms.Form):
    pass


def always(obj: Any) -> bool:
    """The default `available`: the record's state allows the action whatever it is."""
    return True


def no_refusal(obj: Any) -> str | None:
    """The default `refusal`: nothing in the record's state stands in the way."""
    return None


@dataclass(frozen=True)
class ObjectAction:
    name: str  # the URL segment
    label: str
    action: policy.Action | Callable[[Any], policy.Action]
    # The callables take the admin's record (`obj`), the form's cleaned data and the user.
    perform: Callable[[Any, dict[str, Any], Any], str]  # -> the success message
    preview: Callable[[Any, dict[str, Any], Any], list[str]] | None = None  # -> sentences
    form: type[forms.Form] = NoInput
    initial: Callable[[Any], dict[str, Any]] | None = None  # (obj) -> initial form data
    available: Callable[[Any], bool] = always  # the state allows it; else no button
    # Why the record's state refuses the action now, in words (None: it applies): the
    # precondition the service checks on POST, asked the same way. The button is shown
    # disabled with this reason, and the action's view refuses with it.
    refusal: Callable[[Any], str | None] = no_refusal
    danger: bool = False
    intro: str = ""

    def action_for(self, obj) -> policy.Action:
        return self.action(obj) if callable(self.action) else self.action

    def allowed(self, user, obj) -> bool:
        return self.available(obj) and policy.may(user, self.action_for(obj), obj)

    def why_not(self, obj) -> str | None:
        """None when the action applies to `obj` as it stands; otherwise why not."""
        if not self.available(obj):
            return f"“{self.label}” does not apply to {obj} as it stands."
        return self.refusal(obj)


class ObjectActionsMixin(_AdminBase):
    """For a ModelAdmin: `object_actions` become buttons and confirmation views."""

    object_actions: tuple[ObjectAction, ...] = ()
    change_form_template = "admin/portal/change_form.html"

    def get_urls(self):
        opts = self.model._meta
        urls = [
            path(
                "<path:object_id>/do/<str:name>/",
                self.admin_site.admin_view(self.object_action_view),
                name=f"{opts.app_label}_{opts.model_name}_do",
            )
        ]
        return urls + super().get_urls()

    def _action_url(self, obj, name: str) -> str:
        opts = self.model._meta
        return reverse(
            f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_do", args=[obj.pk, name]
        )

    def action_query(self, request: HttpRequest) -> str:
        """A query string the buttons carry to the action and back (e.g. the queue the
        user came from); none by default."""
        return ""

    def buttons(self, request: HttpRequest, obj) -> list[dict]:
        """The buttons the user's role may press: enabled, or disabled with the reason the
        record's state refuses the action (`ObjectAction.refusal`)."""
        query = self.action_query(request)
        buttons = []
        for a in self.object_actions:
            if not a.allowed(request.user, obj):
                continue
            reason = a.refusal(obj)
            url = self._action_url(obj, a.name) + (f"?{query}" if query else "")
            buttons.append({"label": a.label, "url": url, "danger": a.danger, "reason": reason})
        return buttons

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        obj = self.get_object(request, unquote(object_id))
        if obj is not None:
            extra_context["object_actions"] = self.buttons(request, obj)
        return super().change_view(request, object_id, form_url, extra_context)

    def object_action_view(self, request: HttpRequest, object_id: str, name: str) -> HttpResponse:
        action = next((a for a in self.object_actions if a.name == name), None)
        obj = self.get_object(request, unquote(object_id))  # only what the user may see
        if action is None or obj is None:
            raise Http404
        policy.check(request.user, action.action_for(obj), obj)
        refused = action.why_not(obj)
        if refused is not None:
            messages.error(request, refused)
            return HttpResponseRedirect(self._change_url(obj))
        if request.method == "POST":
            form = action.form(request.POST)
        else:
            form = action.form(initial=action.initial(obj) if action.initial else None)
        effect: list[str] | None = None
        if request.method == "POST" and form.is_valid():
            try:
                if request.POST.get("confirmed") == "yes":
                    message = action.perform(obj, form.cleaned_data, request.user)
                    return self.action_done(request, obj, action, message)
                effect = (
                    action.preview(obj, form.cleaned_data, request.user) if action.preview else []
                )
            except PermissionDenied:
                raise
            except DomainError as exc:
                field_name = exc.field if exc.field in form.fields else None
                form.add_error(field_name, exc.message)
                effect = None
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": f"{action.label}: {obj}",
            "opts": opts,
            "original": obj,
            "action": action,
            "form": form,
            "effect": effect,
            "confirming": effect is not None,
            "change_url": self._change_url(obj),
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/portal/object_action.html", context)

    def action_done(
        self, request: HttpRequest, obj, action: ObjectAction, message: str
    ) -> HttpResponse:
        """Where the user lands once `action` is done: the record's page, by default."""
        messages.success(request, message)
        return HttpResponseRedirect(self._change_url(obj))

    def _change_url(self, obj) -> str:
        opts = self.model._meta
        return reverse(
            f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]
        )


def add_object_actions(
    admin_class: type[ObjectActionsMixin],
    actions: Sequence[ObjectAction],
    *,
    after: str | None = None,
) -> None:
    """Add `actions` to the buttons of `admin_class` (another app's admin): right after
    the button named `after`, or last. Adding the same actions again changes nothing."""
    current = list(admin_class.object_actions)
    new = [a for a in actions if a not in current]
    taken = {a.name for a in current} & {a.name for a in new}
    if taken:
        raise ImproperlyConfigured(
            f"{admin_class.__name__} has buttons named {sorted(taken)} already."
        )
    names = [a.name for a in current]
    if after is not None and after not in names:
        raise ImproperlyConfigured(
            f"{admin_class.__name__} has no button {after!r} to add buttons after."
        )
    at = len(current) if after is None else names.index(after) + 1
    admin_class.object_actions = (*current[:at], *new, *current[at:])
