#!/usr/bin/env python3
"""A kustomize subset, for CI machines without kubectl/kustomize.

usage: render.py KUSTOMIZATION_DIR > rendered.yaml

Supports exactly what deploy/k8s uses: `resources` (files and directories
with a kustomization.yaml, recursively), `namespace`, `labels` with
includeSelectors: false (metadata.labels only), `images` (newName/newTag by
image name) and `patches` by `path` as strategic-merge patches, merging maps
recursively and lists of maps by their `name` (new items first, as kubectl).
Anything else is an error, not silently ignored. validate.sh checks this renderer against `kubectl kustomize`
wherever both exist, so the subset cannot drift from the real thing unseen.
"""
import copy
import os
import sys

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}


def merge(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if (isinstance(base, list) and isinstance(patch, list) and
            all(isinstance(x, dict) and "name" in x for x in base + patch)):
        # As kubectl's strategic merge: items new to the list come first (in
        # patch order), then the existing ones, merged with their patch item.
        out = list(base)
        added = []
        for item in patch:
            at = next((i for i, x in enumerate(out) if x["name"] == item["name"]), None)
            if at is None:
                added.append(copy.deepcopy(item))
            else:
                out[at] = merge(out[at], item)
        return added + out
    return copy.deepcopy(patch)


def key(obj):
    return (obj["kind"], obj["metadata"]["name"])


def set_images(obj, images):
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        name, _, tag = container["image"].partition(":")
        for image in images:
            if image["name"] == name:
                container["image"] = "%s:%s" % (image.get("newName", name),
                                                image.get("newTag", tag or "latest"))


def render(directory):
    with open(os.path.join(directory, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    unknown = set(k) - SUPPORTED
    if unknown:
        sys.exit("render.py: %s: unsupported fields %s" % (directory, sorted(unknown)))
    objects = []
    for resource in k.get("resources", []):
        path = os.path.join(directory, resource)
        if os.path.isdir(path):
            objects += render(path)
        else:
            with open(path) as f:
                objects += [o for o in yaml.safe_load_all(f) if o]
    for patch in k.get("patches", []):
        if set(patch) != {"path"}:
            sys.exit("render.py: only `patches: - path:` is supported")
        with open(os.path.join(directory, patch["path"])) as f:
            p = yaml.safe_load(f)
        matches = [i for i, o in enumerate(objects) if key(o) == key(p)]
        if len(matches) != 1:
            sys.exit("render.py: patch %s matches %d objects" % (patch["path"], len(matches)))
        objects[matches[0]] = merge(objects[matches[0]], p)
    for label in k.get("labels", []):
        if label.get("includeSelectors", False) or label.get("includeTemplates", False):
            sys.exit("render.py: only labels with includeSelectors: false are supported")
        for o in objects:
            o["metadata"].setdefault("labels", {}).update(label["pairs"])
    for o in objects:
        if "namespace" in k:
            o["metadata"]["namespace"] = k["namespace"]
        set_images(o, k.get("images", []))
    return objects


def main():
    objects = render(sys.argv[1])
    yaml.safe_dump_all(objects, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
