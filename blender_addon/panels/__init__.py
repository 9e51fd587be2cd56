"""Sidebar panels, parents before children."""

from . import main_panel, rig_panel

classes = (*main_panel.classes, *getattr(rig_panel, "classes", ()))
