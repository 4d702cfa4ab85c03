"""The approvals app's buttons in the admin.

- `requests.py`: filing requests and recording disputes, on subscriptions' and
  reconciliations' pages.
- `decisions.py`: deciding, cancelling and executing requests; resolving disputes.
"""
