#!/usr/bin/env python3
"""Argo CD's Application CRD (YAML on stdin) -> a strict JSON Schema (stdout) for check-jsonschema.

  git -C argo-cd show v3.5.1:manifests/crds/application-crd.yaml \
    | python3 argocd/schema/extract.py > argocd/schema/application-v3.5.1.json

The CRD's openAPIV3Schema is kept as it is, with two additions so that CI catches what the API
server would not (it prunes unknown fields silently, so a misspelt `selfheal` would just be lost):
- every object that lists its properties and does not preserve unknown fields rejects other keys;
- apiVersion and kind must be Application's.
Needs PyYAML.
"""
import json
import sys

import yaml


def strict(node):
    if isinstance(node, dict):
        if (
            node.get("type") == "object"
            and "properties" in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in node
        ):
            node["additionalProperties"] = False
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)


crd = yaml.safe_load(sys.stdin)
(version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
schema = version["schema"]["openAPIV3Schema"]
strict(schema)
group = crd["spec"]["group"]
schema["properties"]["apiVersion"] = {"const": f"{group}/{version['name']}"}
schema["properties"]["kind"] = {"const": crd["spec"]["names"]["kind"]}
schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
schema = {"$schema": "http://json-schema.org/draft-07/schema#", **schema}
# One line: generated, never edited by hand (regenerate it for another Argo CD version).
json.dump(schema, sys.stdout, separators=(",", ":"), sort_keys=True)
sys.stdout.write("\n")
