"""The repository's layout and contract files are where the README says they are."""

import json

from tests.conftest import ROOT


def test_schema_is_valid_json_schema():
    jsonschema = __import__("jsonschema")
    schema = json.loads((ROOT / "protocol" / "pose_packet.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)


def test_layout_folders_exist():
    folders = ["pose_server", "blender_addon", "configs", "checkpoints", "resources", "tests", "scripts", "docs"]
    for name in folders:
        assert (ROOT / name).is_dir(), name
