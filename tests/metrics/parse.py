"""Parses a Prometheus text exposition (stdin) with the reference client's parser and prints its
samples as JSON: [{"name", "labels", "value"}, ...] and the families' types. Any line the parser
refuses makes it exit non-zero.
"""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
# The client's parser accepts a family described twice; Prometheus does not.
typed = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
duplicated = sorted({name for name in typed if typed.count(name) > 1})
if duplicated:
    sys.exit(f"families described more than once: {duplicated}")
families = list(text_string_to_metric_families(text))
print(json.dumps({
    "types": {f.name: f.type for f in families},
    "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for f in families for s in f.samples],
}))
