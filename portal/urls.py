from django.contrib import admin
from django.http import HttpResponse
from django.urls import path
from django.views.generic import RedirectView


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


admin.site.site_header = "Billing operations portal"
admin.site.site_title = "Billing operations"
admin.site.index_title = "Subscriptions, reconciliations and approvals"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("healthz", healthz),
    path("admin/", admin.site.urls),
]
