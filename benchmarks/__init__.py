"""aiwf benchmarks: full, incremental and no-op builds at scale, against the common recipe
and the parse-once limit. Run `python -m benchmarks --help`; results in RESULTS.md."""
