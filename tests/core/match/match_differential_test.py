"""`weightctl match --json` against torch.nn.Module.load_state_dict.

Usage: match_differential_test.py WEIGHTCTL

For each case, real PyTorch builds the source and target models, saves both
state dicts with torch.save, applies the same renames in Python and calls
load_state_dict, strict=True unless the case says otherwise (PyTorch's
default, and weightctl's). Where the case skips mismatches, the skipped keys
keep the target's initial values, as in the tutorials' recipe
(model_dict.update(filtered); model.load_state_dict(model_dict)).
weightctl's missing_keys, unexpected_keys, mismatched keys and exit code must
be exactly PyTorch's, with one rule of weightd's own: a match that pairs no
tensor fails unless --allow-empty.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

import torch
import torchvision
from torch import nn

WEIGHTCTL = None

# load_state_dict raises on a size mismatch even with strict=False, and the
# exception carries neither list. Record the lists PyTorch's own traversal
# fills (every module's _load_from_state_dict gets the same list objects).
_captured = {}
_original_load = nn.Module._load_from_state_dict


def _recording_load(self, state_dict, prefix, local_metadata, strict, missing_keys,
                    unexpected_keys, error_msgs):
    _captured.update(missing=missing_keys, unexpected=unexpected_keys, errors=error_msgs)
    return _original_load(self, state_dict, prefix, local_metadata, strict, missing_keys,
                          unexpected_keys, error_msgs)


nn.Module._load_from_state_dict = _recording_load


def torch_load(model, state_dict, strict=True):
    """(missing, unexpected, mismatched keys, succeeded) as PyTorch reports them."""
    _captured.clear()
    try:
        result = model.load_state_dict(state_dict, strict=strict)
        return list(result.missing_keys), list(result.unexpected_keys), [], True
    except RuntimeError:
        mismatched = [re.match(r"size mismatch for (\S+):", e).group(1)
                      for e in _captured["errors"] if e.startswith("size mismatch")]
        return list(_captured["missing"]), list(_captured["unexpected"]), mismatched, False


def skip_mismatched(state_dict, model):
    """The "keep keys whose shapes match" recipe: sources whose target has another shape are
    replaced by the target's own value (model_dict.update(filtered)), so they load unchanged."""
    target = model.state_dict()
    return {k: v if k not in target or v.shape == target[k].shape else target[k]
            for k, v in state_dict.items()}


def resnet18(**kwargs):
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, **kwargs)


class Backbone(nn.Module):
    """A resnet18 without its classifier as `backbone.`, plus a new head."""

    def __init__(self):
        super().__init__()
        self.backbone = resnet18()
        self.backbone.fc = nn.Identity()
        self.head = nn.Linear(512, 10)


class StageNet(nn.Module):
    """resnet18's modules with layerN renamed stageN, in the same order."""

    def __init__(self):
        super().__init__()
        for name, child in resnet18().named_children():
            setattr(self, re.sub(r"^layer(\d)$", r"stage\1", name), child)


class DifferentialTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def save(self, name, state_dict):
        path = os.path.join(self.tmp.name, name + ".pt")
        torch.save(state_dict, path)
        return path

    def weightctl(self, source, target, *flags):
        proc = subprocess.run([WEIGHTCTL, "match", source, target, "--json", *flags],
                              capture_output=True, text=True, timeout=120)
        self.assertIn(proc.returncode, (0, 1), proc.stderr)
        return json.loads(proc.stdout), proc.returncode

    def check(self, source_sd, target_model, flags, rename=lambda k: k, skip=False,
              strict=True, allow_empty=False):
        """Runs both sides and compares; returns weightctl's report."""
        source = self.save(self.id().split(".")[-1] + "_source", source_sd)
        target = self.save(self.id().split(".")[-1] + "_target", target_model.state_dict())
        renamed = {rename(k): v for k, v in source_sd.items()}
        target_sd = target_model.state_dict()
        mismatched_expected = []
        if skip:
            mismatched_expected = [k for k in target_sd
                                   if k in renamed and renamed[k].shape != target_sd[k].shape]
            loadable = skip_mismatched(renamed, target_model)
        else:
            loadable = renamed
        missing, unexpected, mismatched, ok = torch_load(target_model, loadable, strict=strict)
        if skip:
            mismatched = mismatched_expected
        loaded = [k for k in target_sd if k in renamed and k not in mismatched]
        if not loaded and not allow_empty:
            ok = False  # weightd's own rule: a load that writes nothing fails

        if skip:
            flags = [*flags, "--on-mismatch", "skip"]
        # Strict is the default; say so explicitly in some cases only.
        if not strict:
            flags = [*flags, "--no-strict"]
        elif len(flags) % 2:
            flags = [*flags, "--strict"]
        if allow_empty:
            flags = [*flags, "--allow-empty"]
        report, code = self.weightctl(source, target, *flags)
        self.assertEqual(report["missing_keys"], missing)
        self.assertEqual(report["unexpected_keys"], unexpected)
        self.assertEqual([m["key"] for m in report["mismatched"]], mismatched)
        self.assertEqual(code, 0 if ok else 1)

        # Matched pairs: every target key loaded, with the source's bytes.
        self.assertEqual([m["target"] for m in report["matched"]], loaded)
        by_target = {rename(k): v for k, v in source_sd.items()}
        self.assertEqual(report["bytes"],
                         sum(by_target[k].numel() * by_target[k].element_size() for k in loaded))
        for m in report["matched"]:
            self.assertEqual(m["shape"], list(target_sd[m["target"]].shape))
            self.assertEqual(rename(m["source"]), m["target"])
        return report

    def test_same_architecture(self):
        report = self.check(resnet18().state_dict(), resnet18(), [])
        self.assertEqual(report["missing_keys"], [])

    def test_same_architecture_lenient(self):
        self.check(resnet18().state_dict(), resnet18(), [], strict=False)

    def test_half_precision_checkpoint_is_converted(self):
        sd = {k: v.half() if v.is_floating_point() else v for k, v in resnet18().state_dict().items()}
        report = self.check(sd, resnet18(), [], strict=True)
        self.assertEqual(len(report["matched"]), len(sd))

    def test_1000_classes_into_10_class_head_fails(self):
        report = self.check(resnet18().state_dict(), resnet18(num_classes=10), [])
        self.assertEqual(report["mismatched"][0],
                         {"key": "fc.weight", "source_shape": [1000, 512],
                          "target_shape": [10, 512]})

    def test_1000_classes_into_10_class_head_skipping_mismatches(self):
        # Succeeds under strict=True: the new head keeps its initial values.
        report = self.check(resnet18().state_dict(), resnet18(num_classes=10), [], skip=True)
        self.assertEqual(report["missing_keys"], [])
        self.assertEqual([m["key"] for m in report["mismatched"]], ["fc.weight", "fc.bias"])

    def test_1000_classes_into_10_class_head_skipping_mismatches_lenient(self):
        self.check(resnet18().state_dict(), resnet18(num_classes=10), [], skip=True,
                   strict=False)

    def test_exclude_drops_the_head_before_matching(self):
        sd = resnet18().state_dict()
        kept = {k: v for k, v in sd.items() if not k.startswith("fc.")}
        source = self.save("exclude_source", sd)
        target_model = resnet18(num_classes=10)
        target = self.save("exclude_target", target_model.state_dict())
        missing, unexpected, mismatched, ok = torch_load(target_model, kept, strict=False)
        report, code = self.weightctl(source, target, "--exclude", r"^fc\.", "--no-strict")
        self.assertEqual(report["missing_keys"], missing)
        self.assertEqual(report["unexpected_keys"], unexpected)
        self.assertEqual(report["mismatched"], [])
        self.assertTrue(ok)
        self.assertEqual(code, 0)

    def test_dataparallel_checkpoint_with_explicit_strip(self):
        sd = nn.DataParallel(resnet18()).state_dict()
        self.assertTrue(next(iter(sd)).startswith("module."))
        self.check(sd, resnet18(), ["--strip-prefix", "module."],
                   rename=lambda k: k[len("module."):] if k.startswith("module.") else k,
                   strict=True)

    def test_dataparallel_checkpoint_without_rules(self):
        sd = nn.DataParallel(resnet18()).state_dict()
        report = self.check(sd, resnet18(), [])
        self.assertEqual(report["matched"], [])

    def test_dataparallel_checkpoint_without_rules_lenient_fails_for_matching_nothing(self):
        # PyTorch's strict=False loads nothing and says nothing; weightd fails.
        sd = nn.DataParallel(resnet18()).state_dict()
        self.check(sd, resnet18(), [], strict=False)
        source = self.save("nothing_source", sd)
        target = self.save("nothing_target", resnet18().state_dict())
        proc = subprocess.run([WEIGHTCTL, "match", source, target, "--no-strict"],
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("no tensor matched: 0 of 122 target names found in the checkpoint",
                      proc.stdout)
        self.assertNotIn("load would succeed", proc.stdout)

    def test_dataparallel_checkpoint_without_rules_lenient_allow_empty(self):
        sd = nn.DataParallel(resnet18()).state_dict()
        self.check(sd, resnet18(), [], strict=False, allow_empty=True)

    def test_dataparallel_checkpoint_with_auto(self):
        sd = nn.DataParallel(resnet18()).state_dict()
        report = self.check(sd, resnet18(), ["--auto"],
                            rename=lambda k: k[len("module."):], strict=True)
        self.assertEqual(report["inferred_rules"], ["strip_prefix:module."])

    def test_plain_checkpoint_into_backbone_wrapper(self):
        report = self.check(resnet18().state_dict(), Backbone(), ["--add-prefix", "backbone."],
                            rename=lambda k: "backbone." + k)
        self.assertEqual(report["missing_keys"], ["head.weight", "head.bias"])
        self.assertEqual(report["unexpected_keys"], ["backbone.fc.weight", "backbone.fc.bias"])

    def test_plain_checkpoint_into_backbone_wrapper_with_auto(self):
        report = self.check(resnet18().state_dict(), Backbone(), ["--auto"],
                            rename=lambda k: "backbone." + k)
        self.assertEqual(report["inferred_rules"], ["add_prefix:backbone."])

    def test_regex_rename_of_stages(self):
        report = self.check(resnet18().state_dict(), StageNet(),
                            ["--rename", r"^layer(\d)\.=stage\1."],
                            rename=lambda k: re.sub(r"^layer(\d)\.", r"stage\1.", k),
                            strict=True)
        self.assertEqual(report["matched"][-3]["source"], "layer4.1.bn2.num_batches_tracked")
        self.assertEqual(report["matched"][-3]["target"], "stage4.1.bn2.num_batches_tracked")

    def test_stage_names_without_the_rename(self):
        self.check(resnet18().state_dict(), StageNet(), [])

    def test_different_architectures_get_no_invented_prefix(self):
        torch.manual_seed(0)
        target = torchvision.models.mobilenet_v2(weights=None)
        report = self.check(resnet18().state_dict(), target, ["--auto"])
        self.assertEqual(report["inferred_rules"], [])
        self.assertEqual(report["matched"], [])

    def test_tiny_sequential_with_mismatched_layer(self):
        source = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.BatchNorm1d(3))
        target = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 5))
        self.check(source.state_dict(), target, [])
        self.check(source.state_dict(), target, [], skip=True)
        self.check(source.state_dict(), target, [], skip=True, strict=False)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: match_differential_test.py WEIGHTCTL")
    WEIGHTCTL = sys.argv.pop(1)
    unittest.main()
