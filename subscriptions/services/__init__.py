"""Everything that changes subscription state: one module per concern, each service a
function `<entity>_<verb>(*, ..., actor)` that runs in a transaction and locks what it
changes."""
