"""Parses a Prometheus text exposition (stdin) with the reference client's parser and prints its
samples as JSON: [{"name", "labels", "value"}, ...] and the families' types. Any line the parser
refuses makes it exit non-zero.
"""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

families = list(text_string_to_metric_families(sys.stdin.read()))
print(json.dumps({
    "types": {f.name: f.type for f in families},
    "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for f in families for s in f.samples],
}))
