"""Everything about the MLflow store, with no torch: `names` (every tag, once; no MLflow
either), `runs` (where the store is; open, tag, close), `queries` (find runs, read metrics),
`sweep_protocol` (parent and jobs), `preflight` (is the store usable?), `redact`
(credentials out of what is written). Importing the package imports none of them."""
