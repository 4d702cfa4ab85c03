"""Everything that changes subscription state: one module per concern, each service a
function `<entity>_<verb>(*, ..., actor)` that runs in a transaction. A service that
changes an existing record locks it first (`select_for_update`); the nightly steps lock
each batch with `SKIP LOCKED`; services that only add rows (filing a request, importing
usage, writing invoices) rely on the database's unique constraints instead, so a retry
or a race adds nothing twice."""
