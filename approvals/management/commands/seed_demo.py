"""Load the demo: one user per role and a book of ~200 customers with a year of usage.

It is the approvals app's because it loads both apps' demo data: the subscriptions book
(`subscriptions.demo_data`), then the approval workflows on top (`approvals.demo_data`).

Idempotent: the whole load is one transaction, and once the demo book is there a rerun
only makes sure the users exist with the same passwords. `--reset` replaces the book
with a freshly generated one (the same data again for the same date).
"""

from __future__ import annotations

import secrets
from base64 import b32encode
from datetime import date
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from guardian.models import UserObjectPermission
from tqdm import tqdm

from approvals.demo_data import seed_workflows
from approvals.models import ApprovalDecision, ApprovalRequest, Dispute
from portal import roles
from subscriptions import demo_data
from subscriptions.models import (
    Customer,
    Invoice,
    InvoiceLine,
    Namespace,
    Reconciliation,
    SeatUsageReport,
    Subscription,
    Suspension,
)

# username -> role group (None: superuser). Three sales managers so that account
# ownership shows: each sees only the customers they own.
DEMO_USERS: dict[str, str | None] = {
    "admin": None,
    "support": roles.SUPPORT,
    "support_manager": roles.SUPPORT_MANAGER,
    "sales": roles.SALES,
    "sales2": roles.SALES,
    "sales3": roles.SALES,
    "sales_ops": roles.SALES_OPS,
    "deal_desk": roles.DEAL_DESK,
    "executive": roles.EXECUTIVE,
    "finance": roles.FINANCE,
}
# The login that shows two-factor login in the demo: it has an authenticator app, and
# the demo asks it for a code (dev settings: PORTAL_OTP_ENROLLED_MUST_VERIFY).
DEMO_TWO_FACTOR_USER = "sales_ops"
# Serialises concurrent seed_demo runs (e.g. two `make run`s racing on a fresh database).
_ADVISORY_LOCK_KEY = 0x5EED_DE30


class Command(BaseCommand):
    help = "Create the demo users and demo data (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=200)
        parser.add_argument(
            "--today", type=date.fromisoformat, help="Anchor date (default: today)."
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Delete ALL billing records, then load the demo book again.",
        )
        parser.add_argument(
            "--logins-file",
            type=Path,
            default=settings.BASE_DIR / "var" / "demo-logins.txt",
            help="Where the generated demo passwords are kept (git-ignored var/).",
        )
        parser.add_argument(
            "--force", action="store_true", help="Allow running with DEBUG off (not production!)."
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts):
        if not settings.DEBUG and not opts["force"]:
            raise CommandError("seed_demo writes demo users; it runs only with DEBUG on.")
        if opts["customers"] < 1:
            raise CommandError("--customers must be at least 1.")
        anchor = opts["today"] or timezone.localdate()
        passwords = self._passwords(opts["logins_file"])

        def progress(iterable, desc, total):
            return tqdm(iterable, desc=desc, total=total, disable=opts["no_progress"])

        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK_KEY])
            users = self._users(passwords)
            secrets_by_user = {DEMO_TWO_FACTOR_USER: self._totp_secret(users[DEMO_TWO_FACTOR_USER])}
            if opts["reset"]:
                self._delete_book()
            names = demo_data.customer_names(opts["customers"])
            if Customer.objects.filter(name=names[0]).exists():
                self.stdout.write("Demo data is present already; nothing to add.")
            else:
                result = demo_data.seed(
                    anchor=anchor,
                    customers=opts["customers"],
                    sales_managers=[users["sales"], users["sales2"], users["sales3"]],
                    support_user=users["support"],
                    progress=progress,
                )
                result.counts.update(seed_workflows(users=users, today=anchor))
                summary = ", ".join(f"{n} {what}" for what, n in result.counts.items())
                self.stdout.write(self.style.SUCCESS(f"Demo data loaded: {summary}."))

        self._write_logins(opts["logins_file"], passwords, secrets_by_user)
        self.stdout.write("\nDemo logins (username / password, role):")
        for username, role in DEMO_USERS.items():
            line = f"  {username:<16} {passwords[username]:<16} {role or 'superuser'}"
            if username in secrets_by_user:
                line += f"  two-factor secret: {secrets_by_user[username]}"
            self.stdout.write(line)
        self.stdout.write(
            f"{DEMO_TWO_FACTOR_USER} logs in with a code too: add its two-factor secret to an "
            "authenticator app (time-based, 6 digits, 30 s)."
        )
        self.stdout.write(f"(kept in {opts['logins_file']})")

    def _passwords(self, path: Path) -> dict[str, str]:
        """Passwords made once per machine and reused, so reruns change nothing."""
        known: dict[str, str] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                username, password, *_ = [*line.split(), "", ""]
                if username and password:
                    known[username] = password
        missing = [u for u in DEMO_USERS if u not in known]
        if missing:
            known.update({u: secrets.token_urlsafe(9) for u in missing})
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(f"{u} {known[u]}\n" for u in DEMO_USERS))
            path.chmod(0o600)
        return known

    def _write_logins(self, path: Path, passwords: dict[str, str], totp: dict[str, str]) -> None:
        """username password [two-factor secret], one login a line."""
        lines = [" ".join([u, passwords[u], *totp.get(u, "").split()]) + "\n" for u in DEMO_USERS]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines))
        path.chmod(0o600)

    def _totp_secret(self, user) -> str:
        """The demo's authenticator app for `user`, made once and kept: its secret in
        base32, as authenticator apps take it."""
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
        return b32encode(device.bin_key).decode()

    def _users(self, passwords: dict[str, str]) -> dict:
        User = get_user_model()
        users = {}
        for username, role in DEMO_USERS.items():
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "email": f"{username}@portal.example.com",
                    "first_name": username.replace("_", " ").title(),
                    "is_staff": True,
                    "is_superuser": role is None,
                },
            )
            if created or not user.check_password(passwords[username]):
                user.set_password(passwords[username])
                user.save(update_fields=["password"])
            if role:
                user.groups.add(Group.objects.get(name=role))
            users[username] = user
        return users

    def _delete_book(self) -> None:
        # Children before parents: the ledger protects what it refers to.
        UserObjectPermission.objects.filter(content_type__app_label="subscriptions").delete()
        ApprovalDecision.objects.all().delete()
        ApprovalRequest.objects.filter(linked_reset__isnull=False).delete()  # refunds first
        for model in (
            Dispute,
            ApprovalDecision,
            ApprovalRequest,
            InvoiceLine,
            Invoice,
            Reconciliation,
            Suspension,
            Subscription,
            SeatUsageReport,
            Namespace,
            Customer,
        ):
            model.objects.all().delete()
