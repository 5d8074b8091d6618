"""Client.state_dict against torch.load of the same files, bit for bit."""
import pytest
import torch
from conftest import same_bits

import weightd


def assert_same_dict(got, want):
    assert list(got) == list(want)
    bad = [k for k in got if not same_bits(got[k], want[k].contiguous())]
    assert not bad, "tensors differ: %s" % bad[:5]


@pytest.mark.parametrize("model,key,select", [
    ("resnet18", "resnet18", ""),
    ("resnet18_ddp", "resnet18_ddp", ""),
    ("mobilenet_v2", "mobilenet_v2@2", ""),
    ("squeezenet", "squeezenet", "model_state_dict"),
    ("squeezenet", "squeezenet", "ema"),
    ("tiny", "tiny", ""),
])
def test_equals_torch_load(client, files, model, key, select):
    want = torch.load(files[key])
    got = client.state_dict(model, select=select)
    assert_same_dict(got, want[select] if select else want)
    assert all(t.is_contiguous() and t.device.type == "cpu" for t in got.values())


def test_tensors_are_writable_and_own_their_memory(client, files):
    sd = client.state_dict("tiny")
    sd["f32"].add_(1)  # frombuffer over a bytearray: writable
    again = client.state_dict("tiny")
    assert torch.equal(sd["f32"], again["f32"] + 1)


def test_version_and_default_select(client, files):
    assert_same_dict(client.state_dict("mobilenet_v2", version=1),
                     torch.load(files["mobilenet_v2@1"]))
    # Without select: the first of state_dict, model_state_dict, ...
    assert_same_dict(client.state_dict("squeezenet"),
                     torch.load(files["squeezenet"])["model_state_dict"])


def test_dtype_casts_on_the_server(client, files):
    want = torch.load(files["tiny"])
    got = client.state_dict("tiny", keys=["f32", "f64", "bf16"], dtype=torch.float16)
    assert list(got) == ["f32", "f64", "bf16"]
    for k in got:
        assert same_bits(got[k], want[k].half())
    got = client.state_dict("resnet18", dtype="bfloat16", include=r"^conv1\.")
    assert same_bits(got["conv1.weight"], torch.load(files["resnet18"])["conv1.weight"].bfloat16())


def test_keys_in_the_order_asked(client, files):
    want = torch.load(files["resnet18"])
    got = client.state_dict("resnet18", keys=["fc.bias", "conv1.weight"])
    assert list(got) == ["fc.bias", "conv1.weight"]
    assert same_bits(got["fc.bias"], want["fc.bias"])
    with pytest.raises(weightd.NotFound) as e:
        client.state_dict("resnet18", keys=["no.such.key"])
    assert "no.such.key" in str(e.value)


def test_rules_rename_on_the_server(client, files):
    want = torch.load(files["resnet18_ddp"])
    got = client.state_dict("resnet18_ddp", strip_prefix="module.", include=r"layer4\.",
                            exclude=r"num_batches", add_prefix="backbone.")
    names = ["backbone." + k[len("module."):] for k in want
             if "layer4." in k and "num_batches" not in k]
    assert list(got) == names
    for k in want:
        if "backbone." + k[len("module."):] in got:
            assert same_bits(got["backbone." + k[len("module."):]], want[k])
    got = client.state_dict("resnet18", rename=[(r"^fc\.(weight|bias)$", r"head.\1")],
                            include=r"^fc\.")
    assert list(got) == ["head.weight", "head.bias"]


def test_rules_that_collide_are_refused(client):
    with pytest.raises(weightd.InvalidArgument):
        client.state_dict("resnet18", rename=[(r"^.*$", "x")], include=r"^fc\.")
    with pytest.raises(weightd.InvalidArgument):
        client.state_dict("resnet18", auto_prefix=True)


def test_map_location(client, files):
    got = client.state_dict("tiny", map_location="cpu")
    assert all(t.device.type == "cpu" for t in got.values())
    if torch.cuda.is_available():
        got = client.state_dict("tiny", map_location="cuda:0")
        want = torch.load(files["tiny"], map_location="cuda:0")
        assert all(t.device == torch.device("cuda:0") for t in got.values())
        assert_same_dict({k: v.cpu() for k, v in got.items()},
                         {k: v.cpu() for k, v in want.items()})
