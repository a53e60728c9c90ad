"""Validates every example rule file against the published JSON Schema, with a validator
we did not write (python-jsonschema), so the schema editors use agrees with the files
curfew accepts."""
import glob
import json
import sys

import jsonschema
import yaml


class Loader(yaml.SafeLoader):
    """YAML 1.1 turns 2026-12-25 into a date; curfew (YAML 1.2) reads a string."""


Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in Loader.yaml_implicit_resolvers.items()
}

schema = json.load(open("schema/curfew.schema.json"))
validator = jsonschema.Draft202012Validator(schema)
# The examples, and the rule files that deploy/ ships (compose demo, Kubernetes base and overlays).
files = sorted(
    glob.glob("config/*.yaml")
    + glob.glob("deploy/kubernetes/**/curfew.yaml", recursive=True)
    + glob.glob("deploy/compose/rules/*.yaml")
)
bad = 0
for path in files:
    doc = yaml.load(open(path), Loader=Loader)
    for error in validator.iter_errors(doc):
        bad += 1
        print(f"{path}: {'/'.join(map(str, error.path))}: {error.message}")
print(f"{len(files)} example files checked against schema/curfew.schema.json, {bad} problems")
sys.exit(1 if bad or not files else 0)
