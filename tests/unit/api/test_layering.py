"""The gate imports the store, the policy and the model, and nothing that calls a cloud."""

from __future__ import annotations

import ast
from pathlib import Path

API = Path(__file__).parents[3] / "src" / "imageprov" / "api"
ALLOWED = ("imageprov.api", "imageprov.store", "imageprov.policy", "imageprov.model",
           "imageprov.errors")
FORBIDDEN_THIRD_PARTY = ("boto3", "botocore")


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
    return found


def test_api_imports_only_store_policy_model():
    for path in sorted(API.glob("*.py")):
        for name in _imports(path):
            if name == "imageprov":
                continue
            if name.startswith("imageprov"):
                assert name.startswith(ALLOWED), f"{path.name} imports {name}"
            assert not name.startswith(FORBIDDEN_THIRD_PARTY), f"{path.name} imports {name}"
