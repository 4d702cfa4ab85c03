"""Create the portal's role groups with what each may see.

Every role may view the billing records and approval requests (sales are narrowed to
their own accounts by object permissions). Approval workflow permissions are granted by
later migrations as the workflows arrive.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = (
    "support",
    "support_manager",
    "sales",
    "sales_ops",
    "deal_desk",
    "executive",
    "finance",
)
VIEWABLE = {
    "subscriptions": (
        "customer",
        "namespace",
        "seatusagereport",
        "subscription",
        "reconciliation",
        "suspension",
        "invoice",
        "invoiceline",
    ),
    "approvals": ("approvalrequest", "approvaldecision"),
}


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations ran; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = [
        Permission.objects.get(content_type__app_label=app, codename=f"view_{model}")
        for app, models in VIEWABLE.items()
        for model in models
    ]
    for role in ROLES:
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.add(*view)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0001_initial"),
        ("subscriptions", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
