"""The Dash attention-geometry explorer (`interp dashboard`); it reads the run folders that
`interp scan` writes (Parquet tables, one row per layer/head)."""
