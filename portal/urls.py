from axes.models import AccessAttempt
from django.contrib import admin
from django.http import HttpResponse
from django.urls import path
from django.views.generic import RedirectView

from portal import otp_views, two_factor_admin
from portal.admin_safety import guard_site
from portal.lockout import clean_expired_attempts
from portal.metrics import metrics_view


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


admin.site.site_header = "Billing operations portal"
admin.site.site_title = "Billing operations"
admin.site.index_title = "Subscriptions, reconciliations and approvals"
# The portal's admins guard themselves; this gives the ones other apps registered (auth,
# axes, the outbox) the same answers to hostile URLs.
guard_site(admin.site)
two_factor_admin.install(admin.site)
if AccessAttempt in admin.site._registry:
    admin.site._registry[AccessAttempt].actions = [clean_expired_attempts]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/two-factor/", otp_views.verify, name="two_factor_verify"),
    path("admin/two-factor/enrol/", otp_views.enrol, name="two_factor_enrol"),
    path("admin/", admin.site.urls),
]
