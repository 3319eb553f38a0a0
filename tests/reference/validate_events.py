"""Validates JSON lines against a JSON Schema; prints one line per failure.

usage: validate_events.py SCHEMA EVENTS.jsonl
Exit 0 when every line validates, 1 otherwise.
"""
import json
import sys

import jsonschema

schema = json.load(open(sys.argv[1]))
validator = jsonschema.Draft202012Validator(schema)
jsonschema.Draft202012Validator.check_schema(schema)
bad = total = 0
for n, line in enumerate(open(sys.argv[2], encoding="utf-8"), 1):
    if not line.strip():
        continue
    total += 1
    errors = list(validator.iter_errors(json.loads(line)))
    if errors:
        bad += 1
        if bad <= 5:
            best = jsonschema.exceptions.best_match(errors)
            print(f"line {n}: {best.message} at {list(best.absolute_path)}")
print(f"{total} lines, {bad} invalid")
sys.exit(1 if bad or not total else 0)
