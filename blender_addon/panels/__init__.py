"""Sidebar panels, parents before children."""

from . import main_panel, performers_panel, rig_panel

classes = (*main_panel.classes, *rig_panel.classes, *performers_panel.classes)
