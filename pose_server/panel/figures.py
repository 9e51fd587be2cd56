"""Figures of the panel: the rotatable 3D skeleton (plotly, whose JavaScript ships inside Streamlit)."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from pose_server.skeleton import COCO17_BONES

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def skeleton_3d_figure(people: list[tuple[int, list[list[float]]]], height: int = 420) -> go.Figure:
    """3D joints (metres, Z up) of each person as bones and joints; the camera survives refreshes."""
    fig = go.Figure()
    for n, (track_id, joints) in enumerate(people):
        xs: list[Any] = []
        ys: list[Any] = []
        zs: list[Any] = []
        for a, b in COCO17_BONES:  # None breaks the line between bones
            xs += [joints[a][0], joints[b][0], None]
            ys += [joints[a][1], joints[b][1], None]
            zs += [joints[a][2], joints[b][2], None]
        colour = COLOURS[n % len(COLOURS)]
        fig.add_trace(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", line={"width": 6, "color": colour},
                                   name=f"person {track_id}", hoverinfo="skip"))
        fig.add_trace(go.Scatter3d(x=[j[0] for j in joints], y=[j[1] for j in joints], z=[j[2] for j in joints],
                                   mode="markers", marker={"size": 3, "color": colour}, showlegend=False))
    # One cube around everybody, equal scale on every axis: a flat T-pose would otherwise squash the view.
    pts = np.array([j for _, joints in people for j in joints], np.float64).reshape(-1, 3)
    centre = (pts.min(0) + pts.max(0)) / 2 if len(pts) else np.zeros(3)
    half = max(float((pts.max(0) - pts.min(0)).max()) / 2 if len(pts) else 1.0, 0.5) * 1.1
    axes = {f"{a}axis": {"range": [centre[i] - half, centre[i] + half], "title": f"{a} (m{', up' if a == 'z' else ''})"}
            for i, a in enumerate("xyz")}
    fig.update_layout(
        height=height,
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        uirevision="keep-camera",  # a user's rotation stays when the figure is refreshed
        scene={
            "aspectmode": "cube",
            **axes,
            "camera": {"eye": {"x": 0.6, "y": -1.6, "z": 0.5}, "up": {"x": 0, "y": 0, "z": 1}},
        },
        legend={"orientation": "h"},
    )
    return fig


def timeline_figure(table: dict[str, list[float]], columns: tuple[str, ...], y_title: str,
                    height: int = 220) -> go.Figure:
    """Lines over "seconds ago" (from History.table). Plotly, not st.line_chart: Streamlit's own charts
    go through pyarrow, whose current wheels need numpy 2 (bpy keeps us on numpy 1.x)."""
    fig = go.Figure()
    for n, col in enumerate(columns):
        fig.add_trace(go.Scatter(x=table["seconds ago"], y=table[col], mode="lines", name=col,
                                 line={"color": COLOURS[n % len(COLOURS)], "width": 2}))
    fig.update_layout(height=height, margin={"l": 40, "r": 10, "t": 10, "b": 30}, uirevision="keep",
                      xaxis_title="seconds ago", yaxis_title=y_title, yaxis_rangemode="tozero",
                      legend={"orientation": "h", "y": 1.15}, showlegend=len(columns) > 1)
    return fig
