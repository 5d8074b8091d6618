#!/usr/bin/env python3
"""usage: compare.py A.yaml B.yaml: exit 0 when both hold the same objects
(order-insensitive), else print the first difference."""
import sys

import yaml


def objects(path):
    with open(path) as f:
        return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(f) if o}


a, b = objects(sys.argv[1]), objects(sys.argv[2])
if a.keys() != b.keys():
    sys.exit("objects differ: %s vs %s" % (sorted(a), sorted(b)))
for k in a:
    if a[k] != b[k]:
        sys.exit("%s/%s differs:\n%s\n---\n%s" % (k[0], k[1], yaml.safe_dump(a[k]),
                                                  yaml.safe_dump(b[k])))
print("render.py agrees with kubectl kustomize on %d objects" % len(a))
