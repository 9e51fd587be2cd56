"""Operators, in registration order."""

from . import connection, export, import_session, record, rig_ops

classes = (*connection.classes, *record.classes, *import_session.classes, *export.classes,
           *getattr(rig_ops, "classes", ()))
