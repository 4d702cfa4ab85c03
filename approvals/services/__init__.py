"""Approval workflows: filing requests, deciding, executing, disputes, expiry."""

from .decisions import approval_approve, approval_cancel, approval_reject
from .disputes import DISPUTABLE, dispute_record, dispute_refusal, dispute_resolve
from .execution import (
    REFUND_RESET_READY,
    RefundEffect,
    approval_execute_reset,
    approval_process_refund,
    refund_effect,
    reset_value_check,
)
from .expiry import APPROVED_EXPIRES_AFTER, PENDING_EXPIRES_AFTER, approval_requests_expire
from .requests import (
    approval_request_free_period,
    approval_request_pause,
    approval_request_refund,
    approval_request_reset,
    free_period_stake,
    pause_stake,
    refund_stake,
    reset_stake,
)

__all__ = [
    "APPROVED_EXPIRES_AFTER",
    "DISPUTABLE",
    "PENDING_EXPIRES_AFTER",
    "REFUND_RESET_READY",
    "RefundEffect",
    "approval_approve",
    "approval_cancel",
    "approval_execute_reset",
    "approval_process_refund",
    "approval_reject",
    "approval_request_free_period",
    "approval_request_pause",
    "approval_request_refund",
    "approval_request_reset",
    "approval_requests_expire",
    "dispute_record",
    "dispute_refusal",
    "dispute_resolve",
    "free_period_stake",
    "pause_stake",
    "refund_effect",
    "refund_stake",
    "reset_stake",
    "reset_value_check",
]
