"""Everything about the MLflow store, with no torch: `names` (every tag, once; no MLflow
either), `client` (where the store is; a client, params and tags), `runs` (open and close a
run), `interrupts` (signals while a run is open), `queries` (find runs, read metrics),
`sweep_protocol` (parent and jobs), `preflight` (is the store usable?), `redact`
(credentials out of what is written). Importing the package imports none of them."""
