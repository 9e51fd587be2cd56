"""Operators, in registration order."""

from . import connection, export, import_session, performers, record, rig_ops

classes = (*connection.classes, *record.classes, *import_session.classes, *export.classes,
           *rig_ops.classes, *performers.classes)
