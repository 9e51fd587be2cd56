"""Blender-side logic without UI: packet validation, receiver, tick, recording, import/export, rigs."""
