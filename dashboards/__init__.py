"""The Dash attention-geometry explorer (`interp dashboard`); it reads the run folders that
`interp scan` writes (Parquet tables, one row per layer/head)."""

import plotly.graph_objects as go
import plotly.io as pio

# plotly's mode bar sits over the top right of a figure and covered long titles: every figure
# of the page puts it upright along the right edge instead (a template merged into plotly's)
pio.templates["interp"] = go.layout.Template(layout={"modebar": {"orientation": "v"}})
pio.templates.default = "plotly+interp"
