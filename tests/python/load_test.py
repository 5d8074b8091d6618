"""Client.load_state_dict against torch's own load_state_dict on the same files.

Each test builds two identical fresh torchvision modules, loads one through
weightd and the other with module.load_state_dict(torch.load(file)), and
requires the same report (missing/unexpected keys, error text) and the same
bits in every parameter and buffer.
"""
import pytest
import torch
import torchvision
from conftest import assert_same_state

import weightd


def fresh(arch, seed=100, **kwargs):
    torch.manual_seed(seed)
    return getattr(torchvision.models, arch)(**kwargs)


def torch_load(module, path, select=None, **kwargs):
    sd = torch.load(path)
    if select:
        sd = sd[select]
    return module.load_state_dict(sd, **kwargs)


@pytest.mark.parametrize("arch,model,select", [
    ("resnet18", "resnet18", ""),
    ("mobilenet_v2", "mobilenet_v2", ""),
    ("squeezenet1_1", "squeezenet", "model_state_dict"),
    ("squeezenet1_1", "squeezenet", "ema"),
])
def test_strict_load_matches_torch(client, files, arch, model, select):
    ours, theirs = fresh(arch), fresh(arch)
    r = client.load_state_dict(ours, model, select=select)
    want = torch_load(theirs, files[model if model != "mobilenet_v2" else "mobilenet_v2@2"],
                      select or None)
    assert (r.missing_keys, r.unexpected_keys) == (want.missing_keys, want.unexpected_keys)
    assert repr(r) == repr(want) == "<All keys matched successfully>"
    assert r.tensors == len(ours.state_dict())
    assert r.bytes == sum(t.numel() * t.element_size() for t in theirs.state_dict().values())
    assert r.seconds > 0 and r.mismatched == []
    assert_same_state(ours, theirs)


def test_version_picks_the_file(client, files):
    ours, theirs = fresh("mobilenet_v2"), fresh("mobilenet_v2")
    r = client.load_state_dict(ours, "mobilenet_v2", version=1)
    torch_load(theirs, files["mobilenet_v2@1"])
    assert r.version == 1
    assert_same_state(ours, theirs)
    assert client.load_state_dict(ours, "mobilenet_v2").version == 2


def test_data_parallel_prefix_is_stripped(client, files):
    theirs = fresh("resnet18")
    theirs.load_state_dict({k[len("module."):]: v for k, v in torch.load(
        files["resnet18_ddp"]).items()})
    for rules in ({"strip_prefix": "module."}, {"auto_prefix": True},
                  {"rename": [(r"^module\.(.*)$", r"\1")]}):
        ours = fresh("resnet18")
        r = client.load_state_dict(ours, "resnet18_ddp", **rules)
        assert (r.missing_keys, r.unexpected_keys) == ([], []), rules
        assert_same_state(ours, theirs)
    assert client.load_state_dict(fresh("resnet18"), "resnet18_ddp",
                                  auto_prefix=True).inferred_rules == ["strip_prefix:module."]


def test_into_data_parallel_module(client, files):
    ours = torch.nn.DataParallel(fresh("resnet18"))
    theirs = torch.nn.DataParallel(fresh("resnet18"))
    r = client.load_state_dict(ours, "resnet18", add_prefix="module.")
    theirs.module.load_state_dict(torch.load(files["resnet18"]))
    assert (r.missing_keys, r.unexpected_keys) == ([], [])
    assert_same_state(ours, theirs)


def test_new_head_with_skip_matches_the_filtering_recipe(client, files):
    ours, theirs = fresh("resnet18", num_classes=10), fresh("resnet18", num_classes=10)
    head = theirs.fc.weight.clone()
    r = client.load_state_dict(ours, "resnet18", on_shape_mismatch="skip")
    # The tutorials' recipe: keep the checkpoint entries whose shapes fit,
    # update the module's own state dict with them, load that (strict): the
    # skipped keys keep their initial values and are not missing.
    own = theirs.state_dict()
    own.update({k: v for k, v in torch.load(files["resnet18"]).items()
                if own[k].shape == v.shape})
    want = theirs.load_state_dict(own)
    assert (r.missing_keys, r.unexpected_keys) == (want.missing_keys, want.unexpected_keys)
    assert r.missing_keys == []
    assert r.mismatched == [
        weightd.Mismatch("fc.weight", "fc.weight", [1000, 512], [10, 512]),
        weightd.Mismatch("fc.bias", "fc.bias", [1000], [10]),
    ]
    assert_same_state(ours, theirs)
    assert torch.equal(ours.fc.weight, head)  # the new head keeps its initialisation


def test_new_head_with_skip_reports_the_skipped_keys_as_mismatched_not_missing(client):
    module = fresh("resnet18", num_classes=10)
    r = client.load_state_dict(module, "resnet18", on_shape_mismatch="skip", strict=False)
    assert r.missing_keys == [] and r.unexpected_keys == []
    assert [m.key for m in r.mismatched] == ["fc.weight", "fc.bias"]
    # Strict (the default) fails on a key that is really missing, skip or not.
    module.extra = torch.nn.Linear(2, 2)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.raises(weightd.LoadError) as e:
        client.load_state_dict(module, "resnet18", on_shape_mismatch="skip")
    assert 'Missing key(s) in state_dict: "extra.weight", "extra.bias". ' in str(e.value)
    assert_same_state(module, before)


def assert_same_message(got, want):
    """PyTorch's text; a load that matched no tensor at all adds weightd's hint
    after it (README: a zero-tensor load is an error unless allow_empty)."""
    got, want = str(got), str(want)
    assert got.startswith(want), (got, want)
    rest = got[len(want):]
    assert rest == "" or (rest.startswith("\n\tno tensor matched: 0 of ")
                          and rest.endswith("pass --allow-empty")), rest


def expect_same_failure(client, files, ours, theirs, model, **kwargs):
    """Both raise RuntimeError with the same text; ours writes nothing."""
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    with pytest.raises(RuntimeError) as want:
        torch_load(theirs, files[model], strict=kwargs.get("strict", True))
    with pytest.raises(weightd.LoadError) as got:
        client.load_state_dict(ours, model.split("@")[0], **kwargs)
    assert isinstance(got.value, RuntimeError) and isinstance(got.value, weightd.Error)
    assert got.value.code.name == "FAILED_PRECONDITION"
    assert_same_message(got.value, want.value)
    assert_same_state(ours, before)  # torch wrote some tensors; weightd none
    return got.value


def test_size_mismatch_fails_even_when_not_strict(client, files):
    e = expect_same_failure(client, files, fresh("resnet18", num_classes=10),
                            fresh("resnet18", num_classes=10), "resnet18", strict=False)
    assert "size mismatch for fc.weight: copying a param with shape torch.Size([1000, 512])" \
        in str(e)
    assert e.result.missing_keys == []


def test_strict_failure_on_another_architecture(client, files):
    e = expect_same_failure(client, files, fresh("resnet18"), fresh("resnet18"), "mobilenet_v2@2")
    assert str(e).startswith("Error(s) in loading state_dict for ResNet:\n\tMissing key(s)")
    assert "Unexpected key(s) in state_dict: " in str(e)


def test_strict_failure_on_ddp_names_without_rules(client, files):
    expect_same_failure(client, files, fresh("resnet18"), fresh("resnet18"), "resnet18_ddp")


def test_strict_failure_with_missing_unexpected_and_size_mismatch(client, files):
    def odd():
        m = fresh("resnet18", num_classes=10)
        m.layer4 = torch.nn.Identity()  # its checkpoint keys become unexpected
        m.extra = torch.nn.Linear(3, 3)  # missing
        return m
    expect_same_failure(client, files, odd(), odd(), "resnet18")


def test_lenient_load_reports_like_torch(client, files):
    def odd():
        m = fresh("resnet18")
        m.fc = torch.nn.Identity()
        m.extra = torch.nn.Linear(3, 3)
        m.register_buffer("scratch", torch.zeros(2), persistent=False)
        return m
    ours, theirs = odd(), odd()
    r = client.load_state_dict(ours, "resnet18", strict=False)
    want = torch_load(theirs, files["resnet18"], strict=False)
    assert (r.missing_keys, r.unexpected_keys) == (want.missing_keys, want.unexpected_keys)
    assert r.missing_keys == ["extra.weight", "extra.bias"]
    assert r.unexpected_keys == ["fc.weight", "fc.bias"]
    assert repr(r) == repr(want).replace("_IncompatibleKeys", "LoadResult")
    missing, unexpected = r
    assert (missing, unexpected) == (r.missing_keys, r.unexpected_keys)
    assert_same_state(ours, theirs)


def test_module_without_tensors(client):
    module = torch.nn.ReLU()
    with pytest.raises(weightd.LoadError) as e:
        client.load_state_dict(module, "tiny")
    with pytest.raises(RuntimeError) as want:
        module.load_state_dict(client.state_dict("tiny"))
    assert_same_message(e.value, want.value)
    r = client.load_state_dict(module, "tiny", strict=False, allow_empty=True)
    assert r.missing_keys == [] and len(r.unexpected_keys) == 12 and r.tensors == 0


def test_ignore_rules_quiet_the_strict_check(client, files):
    module = fresh("resnet18")
    module.extra = torch.nn.Linear(3, 3)
    r = client.load_state_dict(module, "resnet18", ignore_missing=r"^extra\.")
    assert r.missing_keys == []
    theirs = fresh("resnet18")
    theirs.extra = torch.nn.Linear(3, 3)
    torch_load(theirs, files["resnet18"], strict=False)
    assert_same_state(module, theirs)


def test_include_exclude_restrict_the_sources(client, files):
    module = fresh("resnet18")
    r = client.load_state_dict(module, "resnet18", include=r"^layer1\.", exclude=r"\.bn",
                               strict=False)
    theirs = fresh("resnet18")
    sd = {k: v for k, v in torch.load(files["resnet18"]).items()
          if k.startswith("layer1.") and ".bn" not in k}
    want = theirs.load_state_dict(sd, strict=False)
    assert (r.missing_keys, r.unexpected_keys) == (want.missing_keys, want.unexpected_keys)
    assert_same_state(module, theirs)


def test_transfer_dtype_converts_like_copy(client, files):
    ours, theirs = fresh("squeezenet1_1"), fresh("squeezenet1_1")
    r = client.load_state_dict(ours, "squeezenet", select="model_state_dict",
                               dtype=torch.bfloat16)
    sd = torch.load(files["squeezenet"])["model_state_dict"]
    theirs.load_state_dict({k: v.bfloat16() if v.is_floating_point() else v
                            for k, v in sd.items()})
    assert_same_state(ours, theirs)
    assert r.bytes == sum(t.numel() * 2 for t in sd.values())


def test_float64_module_gets_a_server_cast(client, files):
    ours, theirs = fresh("squeezenet1_1").double(), fresh("squeezenet1_1").double()
    client.load_state_dict(ours, "squeezenet", select="ema")
    torch_load(theirs, files["squeezenet"], "ema")
    assert_same_state(ours, theirs)


def test_progress_callable_sees_every_byte(client):
    seen = []
    r = client.load_state_dict(fresh("mobilenet_v2"), "mobilenet_v2",
                               progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (r.bytes, r.bytes)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_progress_bar_on_a_terminal(client, monkeypatch):
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    monkeypatch.setattr("sys.stderr", tty)
    client.load_state_dict(fresh("squeezenet1_1"), "squeezenet", progress=True)
    assert "100.0%" in tty.getvalue() and tty.getvalue().endswith("\n")
    pipe = Tty()
    pipe.isatty = lambda: False
    monkeypatch.setattr("sys.stderr", pipe)
    client.load_state_dict(fresh("squeezenet1_1"), "squeezenet", progress=True)
    assert pipe.getvalue() == ""


def test_match_is_a_dry_run(client):
    module = fresh("resnet18", num_classes=10)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    m = client.match(module, "resnet18", on_shape_mismatch="skip", strict=False)
    assert m.ok and m.missing_keys == [] and m.unexpected_keys == []
    assert [x.key for x in m.mismatched] == ["fc.weight", "fc.bias"]
    assert len(m.matched) == len(before) - 2
    strict = client.match(module, "resnet18")
    assert not strict.ok and strict.errors[0].startswith("size mismatch for fc.weight")
    assert_same_state(module, before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_load_onto_cuda_module(client, files):
    ours, theirs = fresh("resnet18").cuda(), fresh("resnet18")
    client.load_state_dict(ours, "resnet18")
    torch_load(theirs, files["resnet18"])
    assert_same_state(ours.cpu(), theirs)
