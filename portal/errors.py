"""The one error type services raise for a rule the user broke; the UI shows its message."""


class DomainError(Exception):
    """An illegal action or transition. `field` names the input at fault, when there is one."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code
