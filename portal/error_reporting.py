"""Optional error reporting to Sentry: on only when SENTRY_DSN is set (production)."""

from __future__ import annotations

import sentry_sdk


def configure(dsn: str, *, environment: str, traces_sample_rate: float = 0.0) -> bool:
    """Start reporting errors to `dsn`; with no DSN, do nothing and send nothing.
    Returns whether reporting is on. No personal data is sent (send_default_pii off)."""
    if not dsn:
        return False
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        traces_sample_rate=traces_sample_rate,
        send_default_pii=False,
    )
    return True
