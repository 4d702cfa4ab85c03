"""Every role may look at the nightly job runs (read-only, like the rest)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = ("support", "support_manager", "sales", "sales_ops", "deal_desk", "executive", "finance")


def grant(apps, schema_editor):
    app_config = apps.get_app_config("subscriptions")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.get(content_type__app_label="subscriptions", codename="view_jobrun")
    for group in apps.get_model("auth", "Group").objects.filter(name__in=ROLES):
        group.permissions.add(view)


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.filter(codename="view_jobrun").first()
    if view:
        for group in apps.get_model("auth", "Group").objects.filter(name__in=ROLES):
            group.permissions.remove(view)


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0003_invariants"),
        ("approvals", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
