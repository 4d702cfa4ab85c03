"""The portal's roles (DOMAIN.md "Who uses the portal"). Each is a Django group."""

SUPPORT = "support"
SUPPORT_MANAGER = "support_manager"
SALES = "sales"
SALES_OPS = "sales_ops"
DEAL_DESK = "deal_desk"
EXECUTIVE = "executive"
FINANCE = "finance"

ROLES: dict[str, str] = {
    SUPPORT: "Answers reconciliation tickets, records disputes, disables QSR for confirmed bugs.",
    SUPPORT_MANAGER: "Support, plus approving small max-seats resets.",
    SALES: "Account managers: request pauses, resets and free periods for their own accounts.",
    SALES_OPS: "The approval queue and the commercial desk: approve or reject requests, "
    "amend and cancel subscriptions.",
    DEAL_DESK: "Processes approved QSR refunds.",
    EXECUTIVE: "Second-level approver for large waivers.",
    FINANCE: "Approver above the money threshold; read-only elsewhere.",
}
