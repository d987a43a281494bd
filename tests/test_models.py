"""The networks (Figure 2's sizes at every layer), the feature contract, size and cost, model files."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from l3net.config import PRESETS
from l3net.errors import ModelFileError
from l3net.models import CONFIG_FILE, WEIGHTS_FILE, L3Net, VGGTower, build_model, load_model

import signals as S

# PAPER_SPEC.md section 3.2 (Figure 2): (channels, height, width) after each layer.
FIGURE_2 = {
    "vision": {
        "conv1_1": (64, 224, 224), "conv1_2": (64, 224, 224), "pool1": (64, 112, 112),
        "conv2_1": (128, 112, 112), "conv2_2": (128, 112, 112), "pool2": (128, 56, 56),
        "conv3_1": (256, 56, 56), "conv3_2": (256, 56, 56), "pool3": (256, 28, 28),
        "conv4_1": (512, 28, 28), "conv4_2": (512, 28, 28), "pool4": (512,),
    },
    "audio": {
        "conv1_1": (64, 257, 199), "conv1_2": (64, 257, 199), "pool1": (64, 128, 99),
        "conv2_1": (128, 128, 99), "conv2_2": (128, 128, 99), "pool2": (128, 64, 49),
        "conv3_1": (256, 64, 49), "conv3_2": (256, 64, 49), "pool3": (256, 32, 24),
        "conv4_1": (512, 32, 24), "conv4_2": (512, 32, 24), "pool4": (512,),
    },
}


_BUILT: dict[str, L3Net] = {}


def preset_model(name: str) -> L3Net:
    """Each preset built once per module (the paper's 9.5 M parameters take a moment to initialise)."""
    if name not in _BUILT:
        _BUILT[name] = build_model(name).eval()
    return _BUILT[name]


@pytest.fixture(scope="module")
def paper():
    return preset_model("paper")


def shapes_of(features: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape[1:]) for name, t in features.items()}


def test_figure_2_by_running_the_paper_towers(paper):
    """One real forward pass per tower at the paper's sizes, every layer (before and after ReLU)."""
    with torch.inference_mode():
        image = torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8)
        vision = paper.forward_features("vision", image, paper.vision.feature_names)
        audio = paper.forward_features("audio", torch.randn(1, 48_000) * 0.1, paper.audio.feature_names)
    for modality, got in (("vision", vision), ("audio", audio)):
        got = shapes_of(got)
        for layer, shape in FIGURE_2[modality].items():
            assert got[layer] == shape, (modality, layer)
            if layer.startswith("conv"):
                assert got[layer + "_prerelu"] == shape
    assert paper.output_shapes()["vision 224x224"] == FIGURE_2["vision"]
    assert paper.output_shapes()["audio 257x199"] == FIGURE_2["audio"]
    assert torch.equal(vision["conv4_2"], torch.relu(vision["conv4_2_prerelu"]))
    assert (audio["conv4_2_prerelu"] < 0).any() and (audio["conv4_2"] >= 0).all()


@pytest.mark.parametrize("preset", ["paper", "small"])
@pytest.mark.parametrize("modality,size", [("vision", (256, 256)), ("vision", (200, 300)), ("audio", None)])
def test_other_input_sizes(preset, modality, size):
    """The towers accept other sizes (256 x 256 and oblong images, 2.5 s spectrograms).

    Spatial sizes depend only on the block structure, so they are checked by running a one-channel
    tower of the preset's structure (cheap); channels come from the preset's own tower.
    """
    model = preset_model(preset)
    if modality == "audio":
        with torch.inference_mode():
            spec = model.frontend(torch.zeros(1, 120_000))  # 2.5 s
        size = tuple(spec.shape[2:])
        assert size == (model.config.spectrogram.num_bins, model.config.spectrogram.num_frames(120_000))
    tower = model.tower(modality)
    thin = VGGTower(tower.in_channels, [1] * len(tower.channels), tower.convs_per_block).eval()
    with torch.inference_mode():
        got = shapes_of(thin.forward_features(torch.zeros(2, tower.in_channels, *size), thin.layer_names))
    expected = tower.output_shapes(*size)
    assert {k: v[1:] for k, v in got.items()} == {k: v[1:] for k, v in expected.items()}
    c = model.config.channels
    assert expected["pool4"] == (c[-1],) and expected["conv4_2"] == (c[-1], size[0] // 8, size[1] // 8)


def test_small_preset_runs_every_layer():
    model = build_model("small").eval()
    with torch.inference_mode():
        a = model.forward_features("audio", torch.randn(2, 48_000), model.audio.feature_names)
        v = model.forward_features("vision", torch.rand(2, 3, 96, 96), model.vision.feature_names)
    assert shapes_of(a) == {
        **model.audio.output_shapes(*model.config.spectrogram_shape),
        **{f"{k}_prerelu": s for k, s in model.audio.output_shapes(*model.config.spectrogram_shape).items() if k.startswith("conv")},
    }
    assert shapes_of(v)["pool4"] == (128,) and shapes_of(v)["conv4_2"] == (128, 12, 12)


def test_parameters_and_flops(paper):
    vision, audio = paper.num_parameters("vision"), paper.num_parameters("audio")
    # "about 4.7 M parameters per tower" (paper 3.4); the vision conv1_1 has 3 input channels, not 1.
    assert 4.6e6 < audio < vision < 4.8e6
    assert vision - audio == 9 * 64 * (3 - 1)
    # Conv weights (no bias: BatchNorm follows) + BatchNorm scale and shift, from the channel list.
    expected, c_in = 0, 1
    for c_out in PRESETS["paper"].channels:
        expected += 9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out + 2 * c_out
        c_in = c_out
    assert audio == expected
    assert paper.num_parameters("head") == 1024 * 128 + 128 + 128 * 2 + 2
    flops = paper.flops_per_pair()
    assert abs(flops["vision"] / 20e9 - 1) < 0.05 and abs(flops["audio"] / 20e9 - 1) < 0.05  # "about 20 GFLOPs"
    assert flops["total"] == flops["vision"] + flops["audio"] + flops["head"]


def test_transfer_features_and_fusion():
    model = build_model("small").eval()
    with torch.inference_mode():
        audio = model.transfer_features("audio", torch.randn(2, 48_000))
        vision = model.transfer_features("vision", torch.rand(2, 3, 112, 112))
        assert audio.shape == (2, model.config.transfer_dim("audio")) == (2, 128 * 4 * 3)
        assert vision.shape == (2, model.config.transfer_dim("vision")) == (2, 128 * 4 * 4)
        # fuse works location by location (..., C) and on whole embeddings
        emb_v, emb_a = torch.randn(2, 5, 7, 128), torch.randn(2, 5, 7, 128)
        assert model.fuse(emb_v, emb_a).shape == (2, 5, 7, 2)
        logits = model(torch.rand(2, 3, 96, 96), torch.randn(2, 48_000))
        assert logits.shape == (2, 2)
    assert PRESETS["paper"].transfer_dim("audio") == 6144 and PRESETS["paper"].transfer_dim("vision") == 8192
    assert model.transfer_layer("audio") == "conv4_2_prerelu" and model.transfer_layer("vision") == "conv4_2"


def test_unknown_layer_and_modality():
    model = build_model(S.tiny_config())
    with pytest.raises(KeyError, match="conv9_1"):
        model.audio.forward_features(torch.zeros(1, 1, 20, 20), ["conv9_1"])
    with pytest.raises(ValueError, match="modality"):
        model.tower("smell")
    assert model.vision.forward_features(torch.zeros(1, 3, 8, 8), []) == {}


def test_seeded_presets():
    a, b, c = build_model("small", seed=0), build_model("small", seed=0), build_model("small", seed=1)
    sd_a, sd_b, sd_c = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    assert not torch.equal(sd_a["audio.layers.conv1_1.conv.weight"], sd_c["audio.layers.conv1_1.conv.weight"])
    state = torch.random.get_rng_state()
    build_model("small", seed=5)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is left alone
    assert not load_model("small").training


# ------------------------------------------------------------------------------------------------
# model files
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    model = build_model(S.tiny_config(), seed=4)
    with torch.no_grad():  # non-default BatchNorm statistics must round-trip too
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    model.save(tmp_path / "m", extra_config={"train": {"lr": 1e-4}})
    return model, tmp_path / "m"


def test_round_trip(saved):
    model, path = saved
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    config = json.loads((path / CONFIG_FILE).read_text())
    assert config["architecture"] == "L3Net" and config["train"] == {"lr": 1e-4} and config["model"]["name"] == "tiny"
    for spec in (path, str(path), path / WEIGHTS_FILE):
        loaded = load_model(spec)
        assert isinstance(loaded, L3Net) and not loaded.training and loaded.config == model.config
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    x = torch.randn(2, 48_000)
    model.eval()
    with torch.inference_mode():
        assert torch.equal(model.embed("audio", x), load_model(path).embed("audio", x))


def test_corrupt_weights(saved):
    _, path = saved
    (path / WEIGHTS_FILE).write_bytes(b"garbage, not safetensors at all")
    with pytest.raises(ModelFileError, match=f"{WEIGHTS_FILE}: corrupt"):
        load_model(path)


def test_truncated_weights(saved):
    _, path = saved
    data = (path / WEIGHTS_FILE).read_bytes()
    (path / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="corrupt"):
        load_model(path)


def test_missing_tensors(saved):
    _, path = saved
    tensors = load_file(str(path / WEIGHTS_FILE))
    del tensors["audio.layers.conv2_1.conv.weight"], tensors["head.fc1.bias"]
    save_file(tensors, str(path / WEIGHTS_FILE))
    with pytest.raises(ModelFileError, match="missing tensors: .*audio.layers.conv2_1.conv.weight"):
        load_model(path)


def test_weights_of_another_architecture(saved):
    _, path = saved
    build_model("small").save(path.parent / "small")
    (path / WEIGHTS_FILE).write_bytes((path.parent / "small" / WEIGHTS_FILE).read_bytes())
    with pytest.raises(ModelFileError, match=r"shape mismatches: .*file \(16, 3, 3, 3\), model \(4, 3, 3, 3\)"):
        load_model(path)
    config = json.loads((path / CONFIG_FILE).read_text())
    config["architecture"] = "ResNet50"
    (path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="not an l3net model config"):
        load_model(path)


@pytest.mark.parametrize(
    "content,match",
    [
        (None, "has no config.json"),
        ("{not json", "not readable JSON"),
        ('["a list"]', "not an l3net model config"),
        ('{"architecture": "L3Net", "model": {"name": "x", "channels": [64, "wide"]}}', "invalid model config"),
        ('{"architecture": "L3Net", "model": {"name": "x", "depth": 50}}', "unknown model config fields: depth"),
        ('{"architecture": "L3Net", "l3net_format": 99, "model": {"name": "x"}}', "newer l3net"),
        ('{"architecture": "L3Net", "l3net_format": "one", "model": {"name": "x"}}', "must be an integer"),
    ],
)
def test_bad_config(saved, content, match):
    _, path = saved
    if content is None:
        (path / CONFIG_FILE).unlink()
    else:
        (path / CONFIG_FILE).write_text(content)
    with pytest.raises(ModelFileError, match=match):
        load_model(path)


def test_missing_weights_and_paths(saved, tmp_path):
    _, path = saved
    (path / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelFileError, match=f"no {WEIGHTS_FILE}"):
        load_model(path)
    with pytest.raises(ModelFileError, match="neither a preset"):
        load_model(tmp_path / "does_not_exist")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="not a model directory"):
        load_model(tmp_path / "empty")


def test_save_is_atomic_and_reports_unwritable(tmp_path):
    from l3net.errors import OutputError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        build_model(S.tiny_config()).save(blocker / "m")
